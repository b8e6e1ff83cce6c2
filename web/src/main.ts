import './gallery.css';
import { render } from 'preact';
import { html } from 'htm/preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { AlbumList } from './album-list.js';
import { AlbumView } from './album-view.js';
import { Api, ApiError, type Role } from './api.js';
import { Compare } from './compare.js';
import { EventBus, parseRoute, type Route, type Session } from './context.js';
import { EventConsole } from './event-console.js';
import { connectEvents, type EventState, type StoreEvent } from './events.js';

/** The key is kept for this tab only (sessionStorage), never in localStorage or a readable cookie. */
const KEY_STORAGE = 'imagestore.apiKey';
/** Events kept in the console. */
const CONSOLE_EVENTS = 200;
/** The session cookie lives an hour; it is renewed well before. */
const RENEW_MS = 20 * 60 * 1000;

type Auth = { state: 'probing' } | { state: 'needs-key'; error?: string } | { state: 'ready'; role: Role; keyed: boolean };

function App() {
  const api = useMemo(() => new Api(sessionStorage.getItem(KEY_STORAGE) ?? undefined), []);
  const bus = useMemo(() => new EventBus(), []);
  const [auth, setAuth] = useState<Auth>({ state: 'probing' });
  const [route, setRoute] = useState<Route>(parseRoute(location.hash));
  const [events, setEvents] = useState<StoreEvent[]>([]);
  const [live, setLive] = useState<EventState>({ transport: 'none', connected: false });

  const signIn = async (key: string | undefined) => {
    api.key = key;
    try {
      const role = await api.startSession();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      setAuth({ state: 'ready', role, keyed: true });
    } catch (e) {
      sessionStorage.removeItem(KEY_STORAGE);
      api.key = undefined;
      setAuth({ state: 'needs-key', error: key && e instanceof ApiError ? e.message : undefined });
    }
  };
  useEffect(() => {
    // An open service answers without a key; one with keys answers 401 and the page asks for one.
    fetch('/api/v1/albums?limit=1', { credentials: 'omit' }).then((res) => {
      if (res.status === 401) return signIn(api.key);
      setAuth({ state: 'ready', role: 'admin', keyed: false });
    }, () => setAuth({ state: 'needs-key', error: 'the service does not answer' }));
    const onHash = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const ready = auth.state === 'ready';
  useEffect(() => {
    if (!ready) return;
    const subscription = connectEvents({
      key: api.key,
      onState: setLive,
      onEvent(event) {
        setEvents((old) => [event, ...old].slice(0, CONSOLE_EVENTS));
        bus.emit(event);
      },
    });
    const renew = auth.keyed ? setInterval(() => void api.startSession().catch(() => undefined), RENEW_MS) : undefined;
    return () => {
      subscription.close();
      clearInterval(renew);
    };
  }, [ready]);

  const signOut = async () => {
    await api.json('DELETE', '/api/v1/session').catch(() => undefined);
    sessionStorage.removeItem(KEY_STORAGE);
    location.hash = '#/';
    location.reload();
  };

  if (auth.state === 'probing') return html`<p class="boot">Loading the gallery…</p>`;
  if (auth.state === 'needs-key') return html`<${KeyPrompt} error=${auth.error} onKey=${signIn} />`;
  const session: Session = { api, bus, role: auth.role };
  return html`
    <header class="top">
      <a class="brand" href="#/">imagestore</a>
      <span class="muted">${auth.keyed ? `${auth.role} key` : ''}</span>
      <span class="spacer"></span>
      <a href="/swagger">API</a>
      ${auth.keyed && html`<button type="button" class="small" onClick=${signOut}>Forget key</button>`}
    </header>
    <main>
      ${route.view === 'albums' && html`<${AlbumList} session=${session} />`}
      ${route.view === 'album' && html`<${AlbumView} key=${route.album} session=${session} album=${route.album} image=${route.image} />`}
      ${route.view === 'compare' && html`<${Compare} session=${session} album=${route.album} a=${route.a} b=${route.b} />`}
    </main>
    <${EventConsole} events=${events} state=${live} />`;
}

function KeyPrompt({ error, onKey }: { error?: string; onKey(key: string): Promise<void> }) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    await onKey(key.trim());
    setBusy(false);
  };
  return html`
    <main class="key-prompt">
      <form onSubmit=${submit} aria-labelledby="key-title">
        <h1 id="key-title">imagestore</h1>
        <p>This service needs an API key. It is kept for this browser tab only.</p>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" value=${key} onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)} required autofocus />
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="submit" class="primary" disabled=${busy}>Open the gallery</button>
      </form>
    </main>`;
}

render(html`<${App} />`, document.getElementById('app')!);
