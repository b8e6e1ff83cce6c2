import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { buildService, startService } from '../../src/server.js';
import { spawnService } from '../helpers/spawn-service.js';
import { startTestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/** A port held by a plain TCP server of the test, on 127.0.0.1. */
async function holdPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A port free a moment ago (taken and given back by the test). */
async function freePort(): Promise<number> {
  const held = await holdPort();
  await held.close();
  return held.port;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

// Issue 14 item 4 and issue 15 item 5: a failed start names the variable to change and releases what it took.
describe('start and close (issue 14: build, listen, close; issue 15: errors at start)', function () {
  this.timeout(60_000);
  let dataDir: string;
  const held: Array<{ close(): Promise<void> }> = [];
  const config = (overrides: Partial<Config>): Config => ({ ...defaultConfig(), shutdownTimeoutMs: 3000, ...overrides, imageDbDir: dataDir });
  const ownerFile = () => path.join(dataDir, '.imagestore', 'owner.pid');

  beforeEach(async () => {
    dataDir = await makeTmpDir();
  });
  afterEach(async () => {
    for (const h of held.splice(0)) await h.close();
    await removeDir(dataDir);
  });

  /** The data dir is free again: the lock file is gone and a service starts on it. */
  async function expectReleased(): Promise<void> {
    expect(existsSync(ownerFile()), 'owner.pid left behind').to.equal(false);
    const again = await startTestService({ dataDir });
    await again.stop();
  }

  it('PORT in use: names PORT, and releases the MQTT port and the data dir lock', async () => {
    const http = await holdPort();
    held.push(http);
    const mqttPort = await freePort();
    const err = await rejection(startService(config({ http: { ...defaultConfig().http, port: http.port }, mqtt: { ...defaultConfig().mqtt, port: mqttPort } }), silentLogger()));
    expect(err.message).to.equal(`PORT=${http.port}: port ${http.port} on 127.0.0.1 is already in use; set PORT to a free port (0 picks any)`);
    const mqtt = net.createServer();
    await new Promise<void>((resolve, reject) => mqtt.once('error', reject).listen(mqttPort, '127.0.0.1', resolve)); // the broker let go of MQTT_PORT
    held.push({ close: () => new Promise<void>((resolve) => mqtt.close(() => resolve())) });
    await expectReleased();
  });

  it('MQTT_PORT in use: names MQTT_PORT, and releases the data dir lock', async () => {
    const mqtt = await holdPort();
    held.push(mqtt);
    const err = await rejection(startService(config({ mqtt: { ...defaultConfig().mqtt, port: mqtt.port } }), silentLogger()));
    expect(err.message).to.equal(`MQTT_PORT=${mqtt.port}: port ${mqtt.port} on 127.0.0.1 is already in use; set MQTT_PORT to a free port (0 picks any)`);
    await expectReleased();
  });

  it('the process prints the variable to change and exits 1, leaving no owner.pid', async () => {
    const http = await holdPort();
    held.push(http);
    const err = await rejection(spawnService({ dataDir, env: { PORT: String(http.port) }, readyTimeoutMs: 30_000 }));
    expect(err.message).to.match(new RegExp(`imagestore: could not start: PORT=${http.port}: port ${http.port} on 127\\.0\\.0\\.1 is already in use; set PORT`));
    expect(existsSync(ownerFile()), 'owner.pid left behind').to.equal(false);
  });

  it('a service built but never listening closes whole, and holds no port', async () => {
    const built = await buildService(config({}), silentLogger());
    expect(existsSync(ownerFile())).to.equal(true);
    await built.close();
    await expectReleased();
  });

  it('close() closes every part even when some fail, and reports each failure (AggregateError)', async () => {
    const svc = await startTestService({ dataDir });
    // Each closes for real, then fails: what is checked is that the parts after them are closed too.
    const { imports, broker } = svc.service;
    const closeImports = imports.close.bind(imports);
    const closeBroker = broker!.close.bind(broker);
    imports.close = async () => {
      await closeImports();
      throw new Error('imports would not close');
    };
    broker!.close = async () => {
      await closeBroker();
      throw new Error('broker would not close');
    };
    const err = await rejection(svc.service.close());
    expect(err).to.be.instanceOf(AggregateError);
    expect((err as AggregateError).errors.map((e: Error) => e.message)).to.deep.equal(['imports would not close', 'broker would not close']);
    expect(err.message).to.equal('closing the service failed: import jobs, broker');
    expect(svc.service.httpServer.listening).to.equal(false);
    await expectReleased();
  });
});
