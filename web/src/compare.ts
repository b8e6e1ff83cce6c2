import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { albumPath } from './api.js';
import { href, type Session } from './context.js';

interface DiffResult {
  width: number;
  height: number;
  differentPixels: number;
  differentFraction: number;
  ssim: number;
  boxes: Array<{ x: number; y: number; width: number; height: number; pixels: number }>;
  truncated: boolean;
}

/** Two images of an album compared: the diff picture, and the differing regions boxed over image a, with the figures. */
export function Compare({ session, album, a, b }: { session: Session; album: string; a: string; b: string }) {
  const [result, setResult] = useState<DiffResult | undefined>();
  const [error, setError] = useState('');
  const query = `a=${encodeURIComponent(`${album}/${a}`)}&b=${encodeURIComponent(`${album}/${b}`)}&resize=fit`;
  useEffect(() => {
    setResult(undefined);
    setError('');
    session.api.json<DiffResult>('GET', `/api/v1/diff?${query}`).then(setResult, (e: Error) => setError(e.message));
  }, [query]);
  const pct = (v: number, of: number) => `${(100 * v) / of}%`;
  return html`
    <section class="compare" aria-labelledby="compare-title">
      <div class="toolbar">
        <a href=${href({ view: 'album', album })} class="back">← ${album}</a>
        <h1 id="compare-title">${a} <span class="muted">vs</span> ${b}</h1>
      </div>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${result && html`
        <dl class="figures">
          <dt>Different pixels</dt><dd>${result.differentPixels.toLocaleString()} (${(result.differentFraction * 100).toFixed(2)} %)</dd>
          <dt>Similarity (SSIM)</dt><dd>${result.ssim.toFixed(4)}</dd>
          <dt>Regions</dt><dd>${result.boxes.length}${result.truncated ? '+' : ''}</dd>
          <dt>Compared at</dt><dd>${result.width} × ${result.height}</dd>
        </dl>`}
      <div class="compare-panes">
        <figure>
          <div class="boxed">
            <img src=${`${albumPath(album, a)}?w=${result?.width ?? 1200}`} alt=${`Image a: ${a}`} />
            ${result?.boxes.map((box, i) => html`<span key=${i} class="box" title=${`${box.pixels} pixels`}
              style=${`left:${pct(box.x, result.width)};top:${pct(box.y, result.height)};width:${pct(box.width, result.width)};height:${pct(box.height, result.height)}`}></span>`)}
          </div>
          <figcaption>a: ${a}, differing regions boxed</figcaption>
        </figure>
        <figure>
          <img src=${`${albumPath(album, b)}?w=${result?.width ?? 1200}`} alt=${`Image b: ${b}`} />
          <figcaption>b: ${b}</figcaption>
        </figure>
        <figure>
          <img src=${`/api/v1/diff?${query}&output=png`} alt="Difference picture" />
          <figcaption>Difference</figcaption>
        </figure>
      </div>
    </section>`;
}
