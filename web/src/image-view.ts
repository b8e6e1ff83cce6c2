import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { albumPath, type ImageInfo } from './api.js';
import { canWrite, href, type Session } from './context.js';
import { formatBytes } from './uploads.js';

interface Props {
  session: Session;
  album: string;
  name: string;
  /** The grid's order, for ← and →. */
  names: string[];
}

/** Largest side of the image shown (CSS pixels); the 2× source doubles it. */
const VIEW_SIDE = 1600;

/**
 * One image over the grid: large, ← → to move, Esc to close; its metadata, download,
 * copy of its id URL, rename and delete. Follows a rename by another client; closes on a delete.
 */
export function ImageView({ session, album, name, names }: Props) {
  const { api, bus, role } = session;
  const [info, setInfo] = useState<ImageInfo | undefined>();
  const [notice, setNotice] = useState('');
  const dialog = useRef<HTMLDivElement>(null);
  const index = names.indexOf(name);
  const go = (image?: string) => {
    location.hash = href({ view: 'album', album, image });
  };
  const step = (delta: number) => {
    const next = names[index + delta];
    if (index >= 0 && next !== undefined) go(next);
  };

  useEffect(() => {
    setInfo(undefined);
    setNotice('');
    api.metadata(album, name).then(setInfo, (e: Error) => setNotice(e.message));
  }, [album, name]);
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    dialog.current?.focus();
    return () => previous?.focus?.();
  }, []);
  // One listener for the view's life, calling the handler of the latest render: a listener re-added
  // by an effect would, between a render and its effect, still move from the image shown before.
  const onKey = useRef<(e: KeyboardEvent) => void>(() => undefined);
  onKey.current = (e) => {
    if ((e.target as HTMLElement).closest('input, textarea, select')) return;
    if (e.key === 'ArrowRight') step(1);
    else if (e.key === 'ArrowLeft') step(-1);
    else if (e.key === 'Escape') go();
    else return;
    e.preventDefault();
  };
  useEffect(() => {
    const listener = (e: KeyboardEvent) => onKey.current(e);
    window.addEventListener('keydown', listener);
    return () => window.removeEventListener('keydown', listener);
  }, []);
  useEffect(() => bus.on((event) => {
    if (event.data.album !== album) return;
    if (event.type === 'imagestore.image.renamed' && event.data.previousName === name && event.data.image) go(event.data.image);
    if (event.type === 'imagestore.image.deleted' && event.data.image === name) setNotice('This image was deleted.');
  }), [album, name]);

  const rename = async () => {
    const to = prompt(`Rename image "${name}" to:`, name)?.trim();
    if (!to || to === name) return;
    try {
      await api.json('PATCH', albumPath(album, name), { imageName: to });
      go(to);
    } catch (e) {
      setNotice((e as Error).message);
    }
  };
  const remove = async () => {
    if (!confirm(`Delete image "${name}" from album "${album}"? This cannot be undone.`)) return;
    try {
      await api.json('DELETE', albumPath(album, name));
      go(names[index + 1] ?? names[index - 1]);
    } catch (e) {
      setNotice((e as Error).message);
    }
  };
  const idUrl = info ? `${location.origin}/api/v1/images/${info.id}` : '';
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(idUrl);
      setNotice('Copied the id URL.');
    } catch {
      setNotice(`Id URL: ${idUrl}`);
    }
  };
  const src = (side: number) => `${albumPath(album, name)}?w=${side}&h=${side}&fit=inside&format=auto`;

  return html`
    <div class="viewer" role="dialog" aria-modal="true" aria-label=${`Image ${name}`} tabIndex="-1" ref=${dialog}>
      <div class="viewer-stage">
        <img key=${name} src=${src(VIEW_SIDE)} srcset=${`${src(VIEW_SIDE)} 1x, ${src(VIEW_SIDE * 2)} 2x`} alt=${name} decoding="async" />
        <button type="button" class="nav prev" onClick=${() => step(-1)} disabled=${index <= 0} aria-label="Previous image (←)">‹</button>
        <button type="button" class="nav next" onClick=${() => step(1)} disabled=${index < 0 || index >= names.length - 1} aria-label="Next image (→)">›</button>
      </div>
      <aside class="viewer-panel" aria-label="Image details">
        <div class="viewer-head">
          <h2>${name}</h2>
          <button type="button" class="close" onClick=${() => go()} aria-label="Close (Esc)">✕</button>
        </div>
        ${notice && html`<p class="notice" role="status">${notice}</p>`}
        ${info ? html`
          <dl class="meta">
            <dt>Dimensions</dt><dd>${info.width && info.height ? `${info.width} × ${info.height}` : '—'}</dd>
            <dt>Format</dt><dd>${info.format ?? info.type}</dd>
            <dt>Size</dt><dd>${formatBytes(info.size)} (${info.size.toLocaleString()} bytes)</dd>
            <dt>SHA-256</dt><dd class="mono">${info.sha256}</dd>
            <dt>Id</dt><dd class="mono">${info.id}</dd>
            <dt>Created</dt><dd><time datetime=${info.createdAt}>${new Date(info.createdAt).toLocaleString()}</time></dd>
            <dt>Modified</dt><dd><time datetime=${info.modifiedAt}>${new Date(info.modifiedAt).toLocaleString()}</time></dd>
          </dl>` : !notice && html`<p class="muted">Loading…</p>`}
        <div class="viewer-actions">
          <a class="button" href=${`${albumPath(album, name)}?download=1`} download=${name}>Download original</a>
          <button type="button" onClick=${copy} disabled=${!info}>Copy id URL</button>
          ${canWrite(role) && html`
            <button type="button" onClick=${rename}>Rename</button>
            <button type="button" class="danger" onClick=${remove}>Delete</button>`}
        </div>
        <p class="muted small">${index >= 0 ? `${index + 1} of ${names.length.toLocaleString()}` : ''} · ← → to move, Esc to close</p>
      </aside>
    </div>`;
}
