/**
 * The broker URL a tool (the subscriber, `imagestore watch`) takes from the same variables as the service:
 * MQTT_URL; else MQTT_HOST and MQTT_PORT (either may be given alone: the host defaults to `defaultHost`,
 * the port to 1883). Undefined when none is set. A wildcard MQTT_HOST (the service's listen-on-every-interface
 * value) means this machine.
 * @throws {Error} `invalid MQTT_PORT: expected an integer 1-65535, got "x"`
 * @example brokerUrlFromEnv({ MQTT_PORT: '1884' }, '127.0.0.1') // 'mqtt://127.0.0.1:1884'
 */
export function brokerUrlFromEnv(env: Record<string, string | undefined>, defaultHost: string): string | undefined {
  const set = (name: string) => (env[name]?.trim() ? env[name]!.trim() : undefined);
  const url = set('MQTT_URL');
  if (url) return url;
  const host = set('MQTT_HOST');
  const port = set('MQTT_PORT');
  if (host === undefined && port === undefined) return undefined;
  if (port !== undefined && (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    throw new Error(`invalid MQTT_PORT: expected an integer 1-65535, got ${JSON.stringify(port)}`);
  }
  const name = host === undefined || host === '0.0.0.0' || host === '::' ? defaultHost : host;
  return `mqtt://${name.includes(':') ? `[${name}]` : name}:${port ?? 1883}`;
}
