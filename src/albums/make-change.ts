import { CRASH_NAMES, UndoFailedError, type ChangeJournal, type CommittedChange, type CrashPoint, type StoreChange } from './changes.js';
import type { StagedUploads } from './staged-uploads.js';

/** The steps of one change, as a store gives them to `makeChange`. */
export interface ChangeSteps {
  journal: ChangeJournal;
  /** The decided change (its commit record); prepared by the store under its locks. */
  change: StoreChange;
  /** Applies it (no fsync needed): see fs-changes.ts. On failure it undoes what it did, or throws UndoFailedError. */
  apply: () => Promise<void>;
  /** Updates the store's in-memory state once applied, before the event may go out. */
  update?: () => void;
  /** Removes what was prepared, when the change is not made (commit failed, or apply failed and was undone). */
  discard?: () => Promise<void>;
  /** Makes an undo durable, before the abort record says the change never happened. */
  flushUndo?: () => Promise<void>;
  /** An upload's staged file (relative path), kept until the change is checkpointed. */
  staged?: { uploads: StagedUploads; file: string };
  crash: CrashPoint;
}

/**
 * The commit path of every change, in both stores. The caller holds the locks from its
 * checks until this returns. Crash ordering, step by step (what the next start finds):
 *  1. prepared (staged file durable, metadata written in tmp): no commit record, so
 *     nothing happened; recovery empties tmp and staged.
 *  2. commit record fsynced (`journal.commit`): the commit point. From here the change
 *     is made: recovery redoes it from the record, whatever part of apply was done.
 *  3. applied without fsync, in-memory state updated, `applied()`: the event may be
 *     published (only now, so no event announces a change not visible), then the 2xx.
 *     The checkpointer later fsyncs what apply wrote and records the checkpoint; until
 *     then a crash is repaired by redo, which is why the staged file is held till then.
 *  If apply fails: it undoes what it did, the undo is flushed, an abort record is
 *  appended (the change never happened: recovery skips it, its event never goes out),
 *  then the error is answered. If the undo or the abort record fails, the journal
 *  stops the process: the change is redone at the next start (the client got no 2xx).
 * @returns the commit record's sequence number (undefined without a journal)
 */
export async function makeChange(steps: ChangeSteps): Promise<number | undefined> {
  const point = CRASH_NAMES[steps.change.op];
  steps.crash(`${point}:before-commit`);
  let committed: CommittedChange;
  try {
    committed = await steps.journal.commit(steps.change);
  } catch (err) {
    await notMade(steps);
    throw err;
  }
  steps.crash(`${point}:after-commit`);
  try {
    await steps.apply();
  } catch (err) {
    if (err instanceof UndoFailedError) {
      committed.fatal(err);
      throw err.applyError;
    }
    try {
      await steps.flushUndo?.();
      await committed.aborted();
    } catch (abortErr) {
      committed.fatal(abortErr);
      throw err;
    }
    await notMade(steps);
    throw err;
  }
  steps.update?.();
  await committed.applied();
  steps.crash(`${point}:after-apply`);
  if (steps.staged) {
    if (committed.seq === undefined) await steps.staged.uploads.drop(steps.staged.file);
    else steps.staged.uploads.hold(committed.seq, steps.staged.file);
  }
  return committed.seq;
}

async function notMade(steps: ChangeSteps): Promise<void> {
  await steps.discard?.().catch(() => undefined);
  if (steps.staged) await steps.staged.uploads.drop(steps.staged.file).catch(() => undefined);
}
