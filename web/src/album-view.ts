import { html } from 'htm/preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { thumbUrl } from './api.js';
import { canWrite, href, type Session } from './context.js';
import { ImageView } from './image-view.js';
import { UploadPanel, UploadQueue, type UploadItem } from './uploads.js';

/** Names per listing page while scrolling in name order. */
const PAGE = 1000;
/** Smallest tile side in CSS pixels; the columns fill the width. */
const MIN_TILE = 150;
const GAP = 6;
/** Rows drawn beyond the visible ones, above and below. */
const OVERSCAN = 3;
/** How long the grid must stay still before its new tiles ask for their thumbnails. */
const REST_MS = 120;

type Sort = 'name' | 'newest' | 'oldest';

/**
 * One album: a virtualised thumbnail grid (only the rows in view are in the DOM), paged by
 * cursor as it scrolls, sorted by name or date; uploads by drag and drop or picker; the image
 * view over it; compare two images. Other clients' uploads, renames and deletes show live.
 */
export function AlbumView({ session, album, image }: { session: Session; album: string; image?: string }) {
  const { api, bus, role } = session;
  const [names, setNames] = useState<string[]>([]);
  const [complete, setComplete] = useState(false);
  const [error, setError] = useState('');
  const [sort, setSort] = useState<Sort>('name');
  const [uploads, setUploads] = useState<UploadItem[]>([]);
  const [dragging, setDragging] = useState(false);
  const [picking, setPicking] = useState<string[] | undefined>();
  const loading = useRef(false);
  const dates = useRef(new Map<string, string>());
  const queue = useMemo(() => new UploadQueue(api, album, setUploads), [album]);

  // Name order pages in as the grid scrolls; date order needs every date first (the API lists by name).
  // The cursor and a generation live in refs: a load started for another album or order is dropped.
  const next = useRef<{ cursor?: string; generation: number; done: boolean }>({ generation: 0, done: false });
  const loadMore = async () => {
    const state = next.current;
    if (loading.current || state.done) return;
    loading.current = true;
    const { generation } = state;
    try {
      const details = sort !== 'name';
      const page = await api.images(album, { limit: details ? 5000 : PAGE, cursor: state.cursor, details });
      if (generation !== next.current.generation) return;
      for (const info of page.images ?? []) dates.current.set(info.name, info.createdAt);
      state.cursor = page.nextCursor;
      state.done = page.nextCursor === undefined;
      setNames((old) => [...old, ...page.imageList]);
      setComplete(state.done);
      loading.current = false;
      if (details && !state.done) await loadMore();
    } catch (e) {
      if (generation === next.current.generation) setError((e as Error).message);
    } finally {
      if (generation === next.current.generation) loading.current = false;
    }
  };
  useEffect(() => {
    next.current = { generation: next.current.generation + 1, done: false };
    loading.current = false;
    setNames([]);
    setComplete(false);
    setError('');
    void loadMore();
  }, [album, sort]);

  useEffect(() => bus.on((event) => {
    const { album: where, image: name, previousName } = event.data;
    if (where !== album || !event.type.startsWith('imagestore.image.') || !name) return;
    if (event.type === 'imagestore.image.created' || event.type === 'imagestore.image.renamed') dates.current.set(name, event.time);
    setNames((old) => {
      let next = old;
      if (event.type === 'imagestore.image.deleted') next = old.filter((n) => n !== name);
      if (event.type === 'imagestore.image.renamed') next = old.filter((n) => n !== previousName);
      if (event.type !== 'imagestore.image.deleted' && !next.includes(name)) next = insert(next, name);
      return next;
    });
  }), [album, sort, complete]);

  // A name after the last loaded one arrives with a later page; a newer date goes first.
  const insert = (list: string[], name: string): string[] => {
    if (sort === 'newest') return [name, ...list];
    if (sort === 'oldest') return complete ? [...list, name] : list;
    const at = list.findIndex((n) => n > name);
    if (at < 0) return complete ? [...list, name] : list;
    return [...list.slice(0, at), name, ...list.slice(at)];
  };

  const ordered = useMemo(() => {
    if (sort === 'name') return names;
    const date = (n: string) => dates.current.get(n) ?? '';
    return [...names].sort((a, b) => (sort === 'newest' ? date(b).localeCompare(date(a)) : date(a).localeCompare(date(b))) || (a < b ? -1 : 1));
  }, [names, sort]);

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (canWrite(role) && e.dataTransfer?.files.length) queue.add(e.dataTransfer.files);
  };
  const onPick = (name: string) => {
    if (!picking) return false;
    const next = picking.includes(name) ? picking.filter((n) => n !== name) : [...picking, name];
    if (next.length === 2) {
      setPicking(undefined);
      location.hash = href({ view: 'compare', album, a: next[0], b: next[1] });
    } else setPicking(next);
    return true;
  };

  return html`
    <section class=${`album${dragging ? ' dragging' : ''}`} aria-labelledby="album-title"
      onDragOver=${(e: DragEvent) => { if (canWrite(role)) { e.preventDefault(); setDragging(true); } }}
      onDragLeave=${(e: DragEvent) => { if (e.target === e.currentTarget) setDragging(false); }}
      onDrop=${onDrop}>
      <div class="toolbar">
        <a href="#/" class="back" aria-label="All albums">← Albums</a>
        <h1 id="album-title">${album}</h1>
        <span class="muted" aria-live="polite">${names.length.toLocaleString()}${complete ? '' : '+'} images</span>
        <label>Sort <select value=${sort} onChange=${(e: Event) => setSort((e.target as HTMLSelectElement).value as Sort)}>
          <option value="name">by name</option>
          <option value="newest">newest first</option>
          <option value="oldest">oldest first</option>
        </select></label>
        <button type="button" class=${picking ? 'active' : ''} aria-pressed=${picking !== undefined} onClick=${() => setPicking(picking ? undefined : [])}>
          ${picking ? `Pick ${2 - picking.length} to compare…` : 'Compare'}
        </button>
        ${canWrite(role) && html`
          <label class="button primary">Upload images
            <input type="file" multiple accept="image/*" class="visually-hidden" onChange=${(e: Event) => {
              const input = e.target as HTMLInputElement;
              if (input.files?.length) queue.add(input.files);
              input.value = '';
            }} />
          </label>`}
      </div>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <${UploadPanel} items=${uploads} queue=${queue} />
      ${canWrite(role) && html`<p class="drop-hint muted">Drop image files anywhere here to upload them.</p>`}
      <${Grid} album=${album} names=${ordered} picking=${picking} onPick=${onPick}
        onNearEnd=${() => { if (!complete && sort === 'name') void loadMore(); }} />
      ${complete && names.length === 0 && html`<p class="muted empty-album">This album is empty.</p>`}
      ${image !== undefined && html`<${ImageView} session=${session} album=${album} name=${image} names=${ordered} />`}
    </section>`;
}

interface GridProps {
  album: string;
  names: string[];
  picking?: string[];
  onPick(name: string): boolean;
  onNearEnd(): void;
}

/**
 * A tile's thumbnail. When the tile scrolls out of the grid its load is cancelled (Chromium drops
 * an image's request when its src is cleared, not when the element leaves the DOM): otherwise every
 * row passed on the way down queues its thumbnails before the ones in view.
 */
function Thumb({ album, name, side, onShown }: { album: string; name: string; side: number; onShown(): void }) {
  const img = useRef<HTMLImageElement>(null);
  useEffect(() => () => {
    const el = img.current;
    if (el && !el.complete) {
      el.srcset = '';
      el.src = '';
    }
  }, []);
  return html`<img ref=${img} src=${thumbUrl(album, name, side)} srcset=${`${thumbUrl(album, name, side)} 1x, ${thumbUrl(album, name, side * 2)} 2x`}
    alt=${name} decoding="async" width=${side} height=${side} onLoad=${onShown} />`;
}

/** The virtualised grid: a spacer as tall as every row, with only the rows near the view drawn in it. */
function Grid({ album, names, picking, onPick, onNearEnd }: GridProps) {
  const scroller = useRef<HTMLDivElement>(null);
  const [box, setBox] = useState({ width: 0, height: 0 });
  const [scrollTop, setScrollTop] = useState(0);
  useLayoutEffect(() => {
    const el = scroller.current!;
    const measure = () => setBox({ width: el.clientWidth, height: el.clientHeight });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  // Tiles get their thumbnail once the view has rested for a moment: a fling or a dragged scrollbar
  // passes thousands of rows, and each thumbnail asked for on the way costs the service a transform
  // (cancelled in the browser or not) before the ones where the view stops.
  const [moving, setMoving] = useState(false);
  useEffect(() => {
    const el = scroller.current!;
    let frame = 0;
    let rest = 0;
    const onScroll = () => {
      setMoving(true);
      clearTimeout(rest);
      rest = window.setTimeout(() => setMoving(false), REST_MS);
      if (!frame) frame = requestAnimationFrame(() => {
        frame = 0;
        setScrollTop(el.scrollTop);
      });
    };
    el.addEventListener('scroll', onScroll, { passive: true });
    return () => {
      el.removeEventListener('scroll', onScroll);
      cancelAnimationFrame(frame);
      clearTimeout(rest);
    };
  }, []);
  // Thumbnails already shown stay while moving (the browser has them); the others wait for the rest.
  const shown = useRef(new Set<string>());

  const columns = Math.max(2, Math.floor((box.width + GAP) / (MIN_TILE + GAP)));
  const tile = box.width ? (box.width - GAP * (columns - 1)) / columns : MIN_TILE;
  const rowHeight = tile + GAP;
  const rows = Math.ceil(names.length / columns);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(rows, Math.ceil((scrollTop + box.height) / rowHeight) + OVERSCAN);
  // No loading="lazy": only the rows near the view are drawn, and Chromium's lazy loading did not start
  // for tiles drawn after a long jump in this scroll container.
  // Thumbnails come in a few sizes only, so the service's derivative cache is shared by every layout.
  const side = tile <= 160 ? 160 : tile <= 240 ? 240 : 320;
  useEffect(() => {
    if (last * columns >= names.length - columns * 20) onNearEnd();
  }, [last, columns, names.length]);

  const tiles = [];
  for (let i = first * columns; i < Math.min(names.length, last * columns); i += 1) {
    const name = names[i];
    const x = (i % columns) * (tile + GAP);
    const y = Math.floor(i / columns) * rowHeight;
    const picked = picking?.includes(name);
    tiles.push(html`
      <a key=${name} class=${`tile${picked ? ' picked' : ''}`} href=${href({ view: 'album', album, image: name })}
        style=${`width:${tile}px;height:${tile}px;transform:translate(${x}px,${y}px)`}
        aria-label=${name} title=${name}
        onClick=${(e: Event) => { if (onPick(name)) e.preventDefault(); }}>
        ${(!moving || shown.current.has(name)) && html`<${Thumb} album=${album} name=${name} side=${side} onShown=${() => shown.current.add(name)} />`}
      </a>`);
  }
  return html`
    <div class="grid-scroll" ref=${scroller} role="region" aria-label="Images" tabIndex="0">
      <div class="grid" style=${`height:${rows * rowHeight}px`}>${tiles}</div>
    </div>`;
}
