import type { StoredImageMeta } from './image-meta.js';

/**
 * A store change as its commit record in the event journal describes it: decided
 * completely before the record is written (names checked, id and times chosen), so
 * that recovery can make it again from the record alone after a crash.
 * `staged` is the uploaded file's path relative to the data dir (kept until checkpointed).
 */
export type StoreChange =
  | { op: 'album.create'; album: string; createdAt: string }
  | { op: 'album.rename'; album: string; to: string }
  | { op: 'album.delete'; album: string }
  | { op: 'image.add'; album: string; meta: StoredImageMeta; staged: string }
  | { op: 'image.rename'; album: string; from: string; meta: StoredImageMeta }
  | { op: 'image.delete'; album: string; meta: StoredImageMeta };

/** True for the changes of a whole album (create, rename, delete). */
export function isAlbumChange(change: StoreChange): boolean {
  return change.op.startsWith('album.');
}

/**
 * Where a store commits the changes it decided: the event journal
 * (notifier/outbox-notifier.ts). Its `commit` is the commit point of a change.
 */
export interface ChangeJournal {
  /**
   * Appends the change's commit record (with its event) and waits until it is on disk.
   * From then on the change must happen: the store applies it at once, and recovery
   * redoes it after a crash.
   * @throws when the record could not be written (nothing was committed)
   */
  commit(change: StoreChange): Promise<CommittedChange>;
}

/** A committed change while the store applies it. */
export interface CommittedChange {
  /** Its commit record's journal sequence number (none without a journal). */
  readonly seq?: number;
  /** The change is applied and visible: its event may now be published. */
  applied(): Promise<void>;
  /**
   * Applying failed and what it did was undone (durably): the change never happened,
   * and its event is never published. Resolves once that is on disk.
   */
  aborted(): Promise<void>;
  /**
   * Applying failed and could not be undone (or not be aborted): what is on disk is unknown.
   * The journal stops taking changes (the process exits); recovery redoes the change at the next start.
   */
  fatal(err: unknown): void;
}

/** Applying a change failed, and undoing what it had done failed too: what is on disk is unknown. */
export class UndoFailedError extends Error {
  constructor(
    readonly applyError: unknown,
    readonly undoError: unknown,
  ) {
    super(`applying a change failed (${(applyError as Error)?.message}) and so did undoing it (${(undoError as Error)?.message})`);
    this.name = 'UndoFailedError';
  }
}

/** What a store does for the checkpointer (notifier/checkpointer.ts). */
export interface Checkpointable {
  /** Makes every change applied so far durable (what apply wrote without fsync). */
  flush(): Promise<void>;
  /** Every change up to journal sequence `seq` is checkpointed: what redo kept for them (staged files) can go. */
  checkpointed(seq: number): Promise<void>;
}

/** What recovery redoes: a committed change and its journal sequence number. */
export interface RedoRecord {
  seq: number;
  change: StoreChange;
}

/** Outcome of redoing one change at start. */
export type RedoOutcome = 'applied' | 'impossible';

/** What recovery needs from the event journal (notifier/outbox.ts). */
export interface RecoveryJournal {
  /** Commit records after the checkpoint, not aborted, in order. */
  readonly redo: RedoRecord[];
  readonly settledSeq: number;
  applied(seq: number): void;
  abort(seq: number): Promise<void>;
  checkpoint(seq: number): Promise<void>;
}

/**
 * Test-only hook (CRASH_POINT): called at each named step of the commit path, it kills
 * the process when the step is the one asked for. Points are `<change>:<step>` with change
 * upload, image-rename, image-delete, album-create, album-rename, album-delete and step
 * before-commit, after-commit, mid-apply, after-apply; and checkpoint:after-flush,
 * checkpoint:after-record.
 */
export type CrashPoint = (point: string) => void;

/** The hook when no crash is asked for. */
export const NO_CRASH: CrashPoint = () => undefined;

/**
 * The hook for CRASH_POINT `spec` (`point` or `point@n`): calls `kill` the n-th time (default
 * the first) the point is reached.
 */
export function crashAt(spec: string, kill: () => void): CrashPoint {
  const [point, nth] = spec.split('@');
  let hits = 0;
  return (reached) => {
    if (reached === point && ++hits === Number(nth ?? 1)) kill();
  };
}

/** The crash point names of each change. */
export const CRASH_NAMES: Record<StoreChange['op'], string> = {
  'album.create': 'album-create',
  'album.rename': 'album-rename',
  'album.delete': 'album-delete',
  'image.add': 'upload',
  'image.rename': 'image-rename',
  'image.delete': 'image-delete',
};
