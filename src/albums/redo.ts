import { isOutOfSpace } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RecoveryJournal, RedoOutcome, StoreChange } from './changes.js';
import type { FsckProblem } from '../contract/types.js';

/**
 * Recovery, before the store is indexed: redoes, in journal order, every change committed
 * after the last checkpoint (`redo` must be idempotent: see fs-changes.ts), flushes what
 * that wrote, and checkpoints them all. A change that cannot be made any more is aborted
 * (never published) and reported. On a full disk the checkpoint may not be recorded: the
 * changes are made all the same (`checkpointed` false), and redone again at the next start.
 */
export async function redoJournal(
  journal: RecoveryJournal,
  redo: (change: StoreChange) => Promise<RedoOutcome>,
  flush: () => Promise<void>,
  log: Logger,
): Promise<{ redone: number; problems: FsckProblem[]; checkpointed: boolean }> {
  const problems: FsckProblem[] = [];
  let redone = 0;
  for (const { seq, change } of journal.redo) {
    if ((await redo(change)) === 'applied') {
      journal.applied(seq);
      redone += 1;
      continue;
    }
    await journal.abort(seq);
    problems.push({
      kind: 'change-not-redone', path: change.album, repaired: true,
      detail: `committed change ${seq} (${change.op}) could not be redone (its album or its staged upload is gone); aborted, its event is not published`,
    });
  }
  await flush();
  let checkpointed = true;
  await journal.checkpoint(journal.settledSeq).catch((err: unknown) => {
    if (!isOutOfSpace(err)) throw err;
    log.warn({ err }, 'recovery: the disk is full, the checkpoint is not recorded; the changes are redone again at the next start');
    checkpointed = false;
  });
  if (journal.redo.length > 0) log.info({ redone, aborted: problems.length }, 'recovery: redid the changes committed after the last checkpoint');
  return { redone, problems, checkpointed };
}
