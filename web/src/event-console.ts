import { html } from 'htm/preact';
import type { EventState, StoreEvent } from './events.js';

/** The events as they arrive, newest first: type, album, image and time; collapsible. */
export function EventConsole({ events, state }: { events: StoreEvent[]; state: EventState }) {
  const status = state.transport === 'none' ? 'connecting…' : `${state.connected ? 'live' : 'reconnecting'} (${state.transport === 'sse' ? 'SSE' : 'MQTT over WebSocket'})`;
  return html`
    <details class="console">
      <summary>Events <span class=${`dot ${state.connected ? 'on' : 'off'}`} aria-hidden="true"></span> <span class="muted">${status} · ${events.length}</span></summary>
      <ol class="event-list" aria-live="polite">
        ${events.map((e) => html`
          <li key=${e.id}>
            <time datetime=${e.time}>${new Date(e.time).toLocaleTimeString()}</time>
            <span class=${`type ${e.type.split('.').pop()}`}>${e.type.replace(/^imagestore\./, '')}</span>
            <span>${e.data.album ?? ''}</span>
            <span class="mono">${e.data.image ?? ''}${e.data.previousName ? ` ← ${e.data.previousName}` : ''}</span>
          </li>`)}
      </ol>
    </details>`;
}
