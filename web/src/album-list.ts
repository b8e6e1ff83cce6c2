import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { albumPath, thumbUrl } from './api.js';
import { canAdmin, canWrite, href, type Session } from './context.js';

/** The albums: a card per album with its image count and cover; create, rename, delete. */
export function AlbumList({ session }: { session: Session }) {
  const { api, bus, role } = session;
  const [albums, setAlbums] = useState<string[] | undefined>();
  const [error, setError] = useState('');
  // Bumped by every image event of an album, so its card counts again.
  const [versions, setVersions] = useState<Record<string, number>>({});
  const [newName, setNewName] = useState('');

  const reload = () => api.albums().then((r) => setAlbums(r.albumList), (e: Error) => setError(e.message));
  useEffect(() => {
    void reload();
    return bus.on((event) => {
      if (event.type.startsWith('imagestore.album.')) void reload();
      else if (event.data.album) setVersions((v) => ({ ...v, [event.data.album!]: (v[event.data.album!] ?? 0) + 1 }));
    });
  }, []);

  const act = async (work: () => Promise<unknown>) => {
    setError('');
    try {
      await work();
      await reload();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const create = (e: Event) => {
    e.preventDefault();
    const name = newName.trim();
    if (!name) return;
    void act(async () => {
      await api.json('POST', '/api/v1/albums', { albumName: name });
      setNewName('');
    });
  };
  const rename = (album: string) => {
    const to = prompt(`Rename album "${album}" to:`, album)?.trim();
    if (to && to !== album) void act(() => api.json('PATCH', albumPath(album), { albumName: to }));
  };
  const remove = (album: string, count: number | undefined) => {
    const what = count === undefined ? 'all its images' : `its ${count} image${count === 1 ? '' : 's'}`;
    if (confirm(`Delete album "${album}" and ${what}? This cannot be undone.`)) void act(() => api.json('DELETE', albumPath(album)));
  };

  return html`
    <section class="albums" aria-labelledby="albums-title">
      <div class="toolbar">
        <h1 id="albums-title">Albums</h1>
        ${canWrite(role) && html`
          <form class="inline" onSubmit=${create}>
            <label for="new-album">New album</label>
            <input id="new-album" value=${newName} onInput=${(e: Event) => setNewName((e.target as HTMLInputElement).value)} placeholder="holidays" required />
            <button type="submit">Create</button>
          </form>`}
      </div>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${albums === undefined ? html`<p class="muted">Loading…</p>` : albums.length === 0 ? html`<p class="muted">No albums yet${canWrite(role) ? ': create one above.' : '.'}</p>` : html`
        <ul class="cards">
          ${albums.map((album) => html`<${AlbumCard} key=${album} session=${session} album=${album} version=${versions[album] ?? 0} onRename=${rename} onDelete=${remove} />`)}
        </ul>`}
    </section>`;
}

interface CardProps {
  session: Session;
  album: string;
  version: number;
  onRename(album: string): void;
  onDelete(album: string, count: number | undefined): void;
}

function AlbumCard({ session, album, version, onRename, onDelete }: CardProps) {
  const { api, role } = session;
  const [summary, setSummary] = useState<{ count: number; cover?: string } | undefined>();
  useEffect(() => {
    // The names alone (the listing holds no count): one cached listing request per card.
    api.images(album).then((r) => setSummary({ count: r.imageList.length, cover: r.imageList[0] }), () => setSummary(undefined));
  }, [album, version]);
  const cover = summary?.cover;
  return html`
    <li class="card">
      <a class="cover" href=${href({ view: 'album', album })} aria-label=${`Open album ${album}`}>
        ${cover ? html`<img src=${thumbUrl(album, cover, 320)} srcset=${`${thumbUrl(album, cover, 320)} 1x, ${thumbUrl(album, cover, 640)} 2x`} alt="" loading="lazy" decoding="async" width="320" height="320" />` : html`<span class="empty" aria-hidden="true">▦</span>`}
      </a>
      <div class="card-body">
        <a class="card-title" href=${href({ view: 'album', album })}>${album}</a>
        <span class="muted">${summary === undefined ? '…' : `${summary.count.toLocaleString()} image${summary.count === 1 ? '' : 's'}`}</span>
        <span class="actions">
          ${canWrite(role) && html`<button type="button" class="small" onClick=${() => onRename(album)} aria-label=${`Rename album ${album}`}>Rename</button>`}
          ${canAdmin(role) && html`<button type="button" class="small danger" onClick=${() => onDelete(album, summary?.count)} aria-label=${`Delete album ${album}`}>Delete</button>`}
        </span>
      </div>
    </li>`;
}
