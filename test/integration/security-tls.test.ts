import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { expect } from 'chai';
import { loadConfig, type Config } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { fixedHeader, streamZeros } from '../helpers/raw-mqtt.js';
import { connectMqtt } from '../helpers/mqtt.js';

const READ_KEY = 'tls-test-read-key-8c2f61d0';
const WRITE_KEY = 'tls-test-write-key-31b9e7a4';
const WAIT_MS = 5000;

/** GET over HTTPS with Node's own client; resolves with status, headers and body text. */
function httpsGet(url: string, options: https.RequestOptions = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { timeout: WAIT_MS, ...options }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}


describe('TLS: HTTPS, MQTTS and WSS with a certificate made at test time', function () {
  this.timeout(20_000);
  let certs: TestCerts;
  let svc: TestService;
  let port: number;

  before(async () => {
    certs = await makeTestCerts();
    const dataDir = await makeTmpDir();
    const config: Config = {
      ...loadConfig({
        HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_MS: '3000',
        API_KEYS: `read:${READ_KEY},write:${WRITE_KEY}`, TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.keyFile,
      }),
      imageDbDir: dataDir,
    };
    svc = await startTestService({ dataDir, config });
    port = Number(new URL(svc.service.httpUrl).port);
  });
  after(async () => {
    await svc?.close();
    await certs?.remove();
  });

  /** Creates an album over HTTPS (write key), so the service publishes an event. */
  async function createAlbum(albumName: string): Promise<void> {
    await svc.http.post('/api/v1/albums').ca(certs.ca).set('Authorization', `Bearer ${WRITE_KEY}`).send({ albumName }).expect(201);
  }

  /** Subscribes on `url` with the read key and waits for the event of an album created after the subscription. */
  async function receivesEventOver(url: string, albumName: string): Promise<void> {
    const client = await connectMqtt(url, { ca: certs.ca, username: 'reader', password: READ_KEY });
    try {
      const payloads: string[] = [];
      client.on('message', (_topic, payload) => payloads.push(payload.toString()));
      await client.subscribeAsync('imagestore/notifier', { qos: 1 });
      await createAlbum(albumName);
      const event = await waitFor(`the event of ${albumName}`, () => payloads.map((p) => JSON.parse(p)).find((e) => e.data.album === albumName), WAIT_MS);
      expect(event.type).to.equal('imagestore.album.created');
    } finally {
      await client.endAsync(true);
    }
  }

  it('serves HTTPS with the configured certificate, trusted through the test CA', async () => {
    expect(svc.service.httpUrl).to.equal(`https://127.0.0.1:${port}`);
    const live = await httpsGet(`${svc.service.httpUrl}/livez`, { ca: certs.ca });
    expect(live.status).to.equal(200);
    expect(JSON.parse(live.body)).to.deep.equal({ status: 'ok', version: 'test' });
    const albums = await httpsGet(`${svc.service.httpUrl}/api/v1/albums`, { ca: certs.ca, headers: { Authorization: `Bearer ${READ_KEY}` } });
    expect(albums.status).to.equal(200);
    // The certificate names localhost too (the client checks the name against `servername`), and no other name.
    const byName = await httpsGet(`${svc.service.httpUrl}/livez`, { ca: certs.ca, servername: 'localhost' });
    expect(byName.status).to.equal(200);
    const otherName = await httpsGet(`${svc.service.httpUrl}/livez`, { ca: certs.ca, servername: 'imagestore.example.com' }).then(() => undefined, (err: NodeJS.ErrnoException) => err);
    expect(otherName?.code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('sends Strict-Transport-Security over HTTPS', async () => {
    const res = await httpsGet(`${svc.service.httpUrl}/livez`, { ca: certs.ca });
    expect(res.headers['strict-transport-security']).to.match(/^max-age=\d{7,}/);
  });

  it('is refused by a client that does not trust the CA, and does not speak plain HTTP on the port', async () => {
    const untrusted = await httpsGet(`${svc.service.httpUrl}/livez`).then(() => undefined, (err: NodeJS.ErrnoException) => err);
    expect(untrusted?.code).to.match(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    const plain = await new Promise<number | Error>((resolve) => {
      const req = http.get(`http://127.0.0.1:${port}/livez`, { timeout: WAIT_MS }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', resolve);
    });
    // Node's TLS server answers a plain request with a bare 400 or drops it; either way no API answer.
    if (typeof plain === 'number') expect(plain).to.equal(400);
    else expect(plain.message).to.match(/socket hang up|ECONNRESET|Parse Error/);
  });

  it('serves MQTTS on its own port, and delivers events to a subscriber that trusts the CA', async () => {
    const tlsPort = svc.service.broker?.tlsPort;
    expect(tlsPort).to.be.a('number').and.not.equal(svc.service.broker?.port);
    await receivesEventOver(`mqtts://127.0.0.1:${tlsPort}`, 'over-mqtts');
  });

  it('refuses an MQTTS client that does not trust the CA, and a plain MQTT client on the MQTTS port', async () => {
    const tlsPort = svc.service.broker?.tlsPort;
    const untrusted = await connectMqtt(`mqtts://127.0.0.1:${tlsPort}`, { username: 'r', password: READ_KEY }).then((c) => c.endAsync(true), (err: Error) => err);
    expect(untrusted).to.be.instanceOf(Error);
    expect((untrusted as NodeJS.ErrnoException).code).to.match(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    const plain = await connectMqtt(`mqtt://127.0.0.1:${tlsPort}`, { username: 'r', password: READ_KEY, connectTimeout: 1500 })
      .then((c) => c.endAsync(true), (err: Error) => err);
    expect(plain).to.be.instanceOf(Error);
  });

  it('closes an MQTTS client that declares a 250 MB CONNECT at its header, as on plain MQTT (issue 12)', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: svc.service.broker!.tlsPort!, ca: certs.ca, servername: 'localhost' });
    socket.on('error', () => undefined);
    let closed = false;
    socket.once('close', () => (closed = true));
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    socket.write(fixedHeader(0x10, 250_000_000));
    const sent = await streamZeros(async (chunk) => {
      if (closed || socket.destroyed) return false;
      if (!socket.write(chunk)) await new Promise((resolve) => setTimeout(resolve, 5));
      return !closed;
    }, 32 * 1024 * 1024);
    await waitFor('the MQTTS connection closed by the broker', () => closed, WAIT_MS).finally(() => socket.destroy());
    expect(sent).to.be.below(16 * 1024 * 1024);
  });

  it('serves MQTT over secure WebSocket (wss://…/mqtt) on the HTTPS port', async () => {
    await receivesEventOver(`wss://127.0.0.1:${port}/mqtt`, 'over-wss');
  });

  it('still asks for a key over MQTTS', async () => {
    const err = await connectMqtt(`mqtts://127.0.0.1:${svc.service.broker?.tlsPort}`, { ca: certs.ca }).then((c) => c.endAsync(true), (e: Error & { code?: number }) => e);
    expect((err as { code?: number }).code).to.equal(4);
  });
});

describe('TLS configuration', () => {
  it('uses the HTTP pair for MQTTS unless MQTT_TLS_* are given, and wants both halves of each pair', () => {
    const same = loadConfig({ TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' });
    expect([same.tls.mqttCertFile, same.tls.mqttKeyFile]).to.deep.equal(['/c.pem', '/k.pem']);
    const own = loadConfig({ TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem', MQTT_TLS_CERT_FILE: '/mc.pem', MQTT_TLS_KEY_FILE: '/mk.pem' });
    expect([own.tls.mqttCertFile, own.tls.mqttKeyFile]).to.deep.equal(['/mc.pem', '/mk.pem']);
    expect(() => loadConfig({ TLS_CERT_FILE: '/c.pem' })).to.throw(ConfigError, /TLS_CERT_FILE\/TLS_KEY_FILE: expected both or neither/);
    expect(() => loadConfig({ MQTT_TLS_KEY_FILE: '/mk.pem' })).to.throw(ConfigError, /MQTT_TLS_CERT_FILE\/MQTT_TLS_KEY_FILE: expected both or neither/);
  });
});
