import { html } from 'htm/preact';
import type { Api } from './api.js';

/** One file's upload, as the panel shows it. */
export interface UploadItem {
  id: number;
  file: File;
  sent: number;
  state: 'queued' | 'sending' | 'done' | 'failed';
  error?: string;
}

/** At most this many files in flight: enough to fill the link, few enough to leave the service room. */
const CONCURRENCY = 3;

/**
 * Uploads files to an album, CONCURRENCY at a time, and reports every change of
 * progress or state through `onChange` (the panel re-renders from the list it gets).
 */
export class UploadQueue {
  items: UploadItem[] = [];
  private nextId = 1;
  private running = 0;

  constructor(private readonly api: Api, private readonly album: string, private readonly onChange: (items: UploadItem[]) => void) {}

  add(files: Iterable<File>): void {
    for (const file of files) this.items.push({ id: this.nextId++, file, sent: 0, state: 'queued' });
    this.changed();
    this.pump();
  }

  /** Queues the failed files again. */
  retryFailed(): void {
    for (const item of this.items) if (item.state === 'failed') Object.assign(item, { state: 'queued', sent: 0, error: undefined });
    this.changed();
    this.pump();
  }

  /** Forgets the finished files. */
  clearDone(): void {
    this.items = this.items.filter((i) => i.state !== 'done');
    this.changed();
  }

  private pump(): void {
    while (this.running < CONCURRENCY) {
      const item = this.items.find((i) => i.state === 'queued');
      if (!item) return;
      this.running += 1;
      item.state = 'sending';
      this.changed();
      this.api.upload(this.album, item.file, (sent) => {
        item.sent = Math.min(sent, item.file.size);
        this.changed();
      }).then(() => {
        item.state = 'done';
        item.sent = item.file.size;
      }, (e: Error) => {
        item.state = 'failed';
        item.error = e.message;
      }).finally(() => {
        this.running -= 1;
        this.changed();
        this.pump();
      });
    }
  }

  private changed(): void {
    this.onChange([...this.items]);
  }
}

/** The upload panel: a bar per file and one overall (bytes), errors in words, retry. */
export function UploadPanel({ items, queue }: { items: UploadItem[]; queue: UploadQueue }) {
  if (items.length === 0) return null;
  const total = items.reduce((n, i) => n + i.file.size, 0);
  const sent = items.reduce((n, i) => n + (i.state === 'done' ? i.file.size : i.sent), 0);
  const failed = items.filter((i) => i.state === 'failed').length;
  const busy = items.some((i) => i.state === 'queued' || i.state === 'sending');
  return html`
    <section class="uploads" aria-label="Uploads">
      <div class="uploads-head">
        <label>Overall <progress value=${sent} max=${total || 1} aria-label="Overall upload progress"></progress></label>
        <span class="muted">${formatBytes(sent)} of ${formatBytes(total)}${failed ? ` · ${failed} failed` : ''}</span>
        ${failed > 0 && html`<button type="button" class="small" onClick=${() => queue.retryFailed()}>Retry failed</button>`}
        ${!busy && html`<button type="button" class="small" onClick=${() => queue.clearDone()}>Clear finished</button>`}
      </div>
      <ul>
        ${items.map((i) => html`
          <li key=${i.id} class=${`upload ${i.state}`}>
            <span class="upload-name">${i.file.name}</span>
            <progress value=${i.state === 'done' ? 1 : i.sent} max=${i.state === 'done' ? 1 : i.file.size || 1} aria-label=${`Progress of ${i.file.name}`}></progress>
            <span class="upload-state">${i.state === 'failed' ? html`<span class="error" role="alert">${i.error}</span>` : i.state === 'done' ? 'uploaded' : i.state === 'sending' ? formatBytes(i.sent) : 'waiting'}</span>
          </li>`)}
      </ul>
    </section>`;
}

/** 1536 → "1.5 KB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
