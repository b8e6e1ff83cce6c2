/**
 * Entry of a diff worker thread (started by DiffPool): takes one job at a
 * time from the parent, compares and renders, and answers with the result
 * or with the error's code and message (classes do not cross threads).
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { diffImages } from './diff.js';
import type { DiffAnswer, DiffJob } from './diff-pool.js';
import { serveJobs } from './worker-pool.js';
import { configureImageEngine } from './engine-settings.js';
import { renderDiffPng, renderSideBySide } from './diff-render.js';
import { engineError } from './inspect.js';

async function run({ a, b, options, output }: DiffJob): Promise<DiffAnswer> {
  const { result, pixels } = await diffImages(a, b, options);
  if (output === 'json') return { result };
  try {
    return { result, png: output === 'png' ? await renderDiffPng(pixels, result) : await renderSideBySide(pixels, result) };
  } catch (err) {
    // Both inputs decoded, so the picture failed on their shape (libvips' size limits): the input's fault, not ours.
    throw engineError(err, 'the diff picture cannot be made');
  }
}

/**
 * Lowers this thread's CPU priority (nice +10; Linux gives each thread its own):
 * on a busy machine the event loop (health checks, uploads, downloads) gets
 * the CPU before a comparison does. Elsewhere it stays as it is.
 */
function yieldToEventLoop(): void {
  try {
    const thread = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(thread, Math.min(19, getPriority(thread) + 10));
  } catch {
    // No /proc (not Linux) or not allowed: same priority as the event loop.
  }
}

yieldToEventLoop();
configureImageEngine();
serveJobs(parentPort!, run);
