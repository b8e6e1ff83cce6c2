import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTmpDir, removeDir } from './tmp-dir.js';

const run = promisify(execFile);
const OPENSSL = '/usr/bin/openssl';

/** A throw-away CA and a server certificate it signed, as PEM files in a temp dir. */
export interface TestCerts {
  dir: string;
  /** The CA certificate: what clients trust (`ca`). */
  caFile: string;
  /** The server certificate (subjectAltName IP:127.0.0.1, DNS:localhost) and its private key. */
  certFile: string;
  keyFile: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Removes the directory. */
  remove(): Promise<void>;
}

/**
 * Generates, with the system's `openssl`, a self-signed CA and a server
 * certificate for 127.0.0.1 and localhost signed by it (EC P-256, valid one
 * day), so HTTPS, MQTTS and WSS can be tested end to end with certificate
 * checking on.
 * @example
 * const certs = await makeTestCerts();
 * https.get({ host: '127.0.0.1', port, ca: certs.ca, path: '/livez' });
 */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await makeTmpDir('imagestore-certs-');
  const file = (name: string) => path.join(dir, name);
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(OPENSSL, ['req', '-x509', ...ecKey, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '1',
    '-subj', '/CN=imagestore test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await run(OPENSSL, ['req', '-new', ...ecKey, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost']);
  await fs.writeFile(file('server.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '',
  ].join('\n'));
  await run(OPENSSL, ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file('server.crt'), '-days', '1', '-extfile', file('server.ext')]);
  const [ca, cert, key] = await Promise.all(['ca.crt', 'server.crt', 'server.key'].map((name) => fs.readFile(file(name))));
  return {
    dir, caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key'), ca, cert, key,
    remove: () => removeDir(dir),
  };
}
