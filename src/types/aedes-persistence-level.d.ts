// aedes-persistence-level ships no types: it takes an abstract-level database and returns an aedes persistence.
declare module 'aedes-persistence-level' {
  import type { AbstractLevel } from 'abstract-level';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  export default function aedesPersistenceLevel(db: AbstractLevel<any, any, any>): any;
}
