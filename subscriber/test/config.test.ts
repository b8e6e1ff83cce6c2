import { expect } from 'chai';
import path from 'node:path';
import { DEFAULT_API_URL, DEFAULT_MQTT_URL, loadSubscriberConfig, mirrorClientId, SubscriberConfigError } from '../src/config.js';

/** The problems reported for argv/env; fails if the config loads. */
function problemsOf(argv: string[], env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadSubscriberConfig(argv, env);
  } catch (err) {
    expect(err).to.be.instanceOf(SubscriberConfigError);
    return (err as SubscriberConfigError).problems;
  }
  return expect.fail('expected a SubscriberConfigError');
}

describe('subscriber loadSubscriberConfig', () => {
  it('has defaults for everything', () => {
    expect(loadSubscriberConfig([], {})).to.deep.equal({
      help: false,
      mqtt: { url: DEFAULT_MQTT_URL, topic: 'imagestore/notifier', clientId: undefined, username: undefined, password: undefined, clean: true },
      format: 'text',
      filter: { albums: [], types: [] },
    });
  });

  it('reads the environment, treating empty optional variables as unset', () => {
    const env = { MQTT_URL: 'wss://broker.example:443/mqtt', MQTT_TOPIC: 'imagestore/+', MQTT_CLIENT_ID: '', MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p', LOG_FORMAT: 'json' };
    const config = loadSubscriberConfig([], env);
    expect(config.mqtt).to.deep.equal({ url: env.MQTT_URL, topic: 'imagestore/+', clientId: undefined, username: 'u', password: 'p', clean: true });
    expect(config.format).to.equal('json');
  });

  it('uses the service\'s broker variables when MQTT_URL is not set: MQTT_HOST and MQTT_PORT, each alone or both (issue 15)', () => {
    expect(loadSubscriberConfig([], { MQTT_PORT: '1884' }).mqtt.url).to.equal('mqtt://127.0.0.1:1884');
    expect(loadSubscriberConfig([], { MQTT_HOST: 'broker.lan' }).mqtt.url).to.equal('mqtt://broker.lan:1883');
    expect(loadSubscriberConfig([], { MQTT_HOST: '0.0.0.0', MQTT_PORT: '2883' }).mqtt.url).to.equal('mqtt://127.0.0.1:2883');
    expect(loadSubscriberConfig([], { MQTT_HOST: '::1', MQTT_PORT: '2883' }).mqtt.url).to.equal('mqtt://[::1]:2883');
    expect(loadSubscriberConfig([], { MQTT_URL: 'mqtt://b:1', MQTT_PORT: '1884' }).mqtt.url).to.equal('mqtt://b:1');
    expect(problemsOf([], { MQTT_PORT: '18x3' })).to.deep.equal(['invalid MQTT_PORT: expected an integer 1-65535, got "18x3"']);
  });

  it('lets flags win over variables and collects repeated filters', () => {
    const argv = ['--url', 'mqtts://b:8883', '--json', '--album', 'holidays', '--album=work', '--type', 'image.created', '--type', 'imagestore.album.deleted'];
    const config = loadSubscriberConfig(argv, { MQTT_URL: 'mqtt://ignored', LOG_FORMAT: 'text' });
    expect(config.mqtt.url).to.equal('mqtts://b:8883');
    expect(config.format).to.equal('json');
    expect(config.filter).to.deep.equal({ albums: ['holidays', 'work'], types: ['imagestore.image.created', 'imagestore.album.deleted'] });
  });

  it('names the variable, the expected form and the value received', () => {
    expect(problemsOf([], { MQTT_URL: 'http://x' })).to.deep.equal([
      'invalid MQTT_URL: expected mqtt://, mqtts://, ws:// or wss:// URL, got "http://x"',
    ]);
    expect(problemsOf(['--url', 'not a url'])).to.deep.equal(['invalid --url: expected mqtt://, mqtts://, ws:// or wss:// URL, got "not a url"']);
  });

  it('reports several problems at once, in one error', () => {
    const env = { MQTT_URL: 'http://x', LOG_FORMAT: 'xml', MQTT_TOPIC: 'a/#/b', MQTT_PASSWORD: 'secret' };
    const problems = problemsOf(['--type', 'image.exploded', '--bogus', 'stray', '--album', ''], env);
    expect(problems).to.have.length(8);
    const all = problems.join('\n');
    expect(all).to.match(/invalid MQTT_URL: .* got "http:\/\/x"/);
    expect(all).to.match(/invalid LOG_FORMAT: expected "text" or "json", got "xml"/);
    expect(all).to.match(/invalid MQTT_TOPIC: expected an MQTT topic filter .* got "a\/#\/b"/);
    expect(all).to.match(/invalid MQTT_PASSWORD: expected MQTT_USERNAME to be set as well/);
    expect(all).to.match(/invalid --type: expected one of album\.created, .*image\.fetched(, [a-z.]+)*, got "image\.exploded"/);
    expect(all).to.match(/unknown option --bogus/);
    expect(all).to.match(/unexpected argument: .* got "stray"/);
    expect(all).to.match(/invalid --album: expected an album name, got ""/);
  });

  it('lists every problem in the error message, one per line', () => {
    const err = (() => {
      try {
        loadSubscriberConfig(['--json=yes'], { LOG_FORMAT: 'xml' });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).to.equal(
      'invalid subscriber configuration:\n  - invalid --json: expected no value, got "yes"\n  - invalid LOG_FORMAT: expected "text" or "json", got "xml"',
    );
  });

  it('reports a flag given without its value', () => {
    expect(problemsOf(['--album'])).to.deep.equal(['invalid --album: expected a value after it, got nothing']);
    expect(problemsOf(['--url', '--json'])).to.deep.equal(['invalid --url: expected a value after it, got option "--json"']);
  });

  it('accepts valid topic filters and rejects misplaced wildcards', () => {
    for (const topic of ['#', 'imagestore/#', '+/notifier', 'a/+/b']) {
      expect(loadSubscriberConfig([], { MQTT_TOPIC: topic }).mqtt.topic).to.equal(topic);
    }
    for (const topic of ['', 'a#', 'a/b+', '#/a']) expect(problemsOf([], { MQTT_TOPIC: topic })).to.have.length(1);
  });

  it('returns help: true with --help, even when other settings are wrong', () => {
    expect(loadSubscriberConfig(['--help'], { MQTT_URL: 'http://x' }).help).to.equal(true);
  });

  describe('mirror mode', () => {
    it('takes --mirror DIR (made absolute), the API from IMAGESTORE_URL or its default, and a persistent session', () => {
      const config = loadSubscriberConfig(['--mirror', 'copy/'], {});
      expect(config.mirror).to.deep.equal({ dir: path.resolve('copy'), apiUrl: DEFAULT_API_URL });
      expect(config.mqtt.clean).to.equal(false);
      expect(config.mqtt.clientId).to.equal(mirrorClientId('copy'));
      expect(loadSubscriberConfig(['--mirror', 'copy'], { IMAGESTORE_URL: 'https://store.example/base/' }).mirror?.apiUrl).to.equal(
        'https://store.example/base',
      );
      expect(loadSubscriberConfig(['--mirror', 'copy'], { IMAGESTORE_API_KEY: 'read-key-0123456789' }).mirror?.apiKey).to.equal('read-key-0123456789');
    });

    it('lets --api win over IMAGESTORE_URL and --client-id over MQTT_CLIENT_ID', () => {
      const env = { IMAGESTORE_URL: 'http://ignored:1', MQTT_CLIENT_ID: 'from-env' };
      const config = loadSubscriberConfig(['--mirror', '/m', '--api', 'http://127.0.0.1:3333', '--client-id', 'mine'], env);
      expect(config.mirror?.apiUrl).to.equal('http://127.0.0.1:3333');
      expect(config.mqtt.clientId).to.equal('mine');
      expect(loadSubscriberConfig(['--mirror', '/m'], env).mqtt.clientId).to.equal('from-env');
    });

    it('derives a client id that is stable for a directory and differs between directories', () => {
      expect(mirrorClientId('/srv/a')).to.equal(mirrorClientId('/srv/a/'));
      expect(mirrorClientId('/srv/a')).to.not.equal(mirrorClientId('/srv/b'));
      expect(mirrorClientId('/srv/a')).to.match(/^imagestore-mirror-[0-9a-f]{16}$/);
    });

    it('keeps the logging mode on a clean session, with --client-id if given', () => {
      const config = loadSubscriberConfig(['--client-id', 'logger-1'], {});
      expect(config.mirror).to.equal(undefined);
      expect(config.mqtt).to.include({ clientId: 'logger-1', clean: true });
    });

    it('reports --type with --mirror, --api without --mirror, and bad mirror values', () => {
      expect(problemsOf(['--mirror', '/m', '--type', 'image.created'])).to.deep.equal([
        'invalid --type: expected no --type with --mirror (the mirror needs every event type), got "image.created"',
      ]);
      expect(problemsOf(['--api', 'http://x'])).to.deep.equal([
        'invalid --api: expected --mirror DIR as well (only the mirror uses the REST API), got "http://x"',
      ]);
      expect(problemsOf(['--mirror', '/m', '--api', 'mqtt://x'])).to.deep.equal(['invalid --api: expected an http:// or https:// URL, got "mqtt://x"']);
      expect(problemsOf(['--mirror', '/m'], { IMAGESTORE_URL: 'nope' })).to.deep.equal([
        'invalid IMAGESTORE_URL: expected an http:// or https:// URL, got "nope"',
      ]);
      expect(problemsOf(['--mirror', ''])).to.deep.equal(['invalid --mirror: expected a directory, got ""']);
      expect(problemsOf(['--mirror', '/m', '--client-id', ''])).to.deep.equal(['invalid --client-id: expected a client id, got ""']);
    });
  });
});
