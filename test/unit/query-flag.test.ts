import { expect } from 'chai';
import { ValidationError } from '../../src/errors.js';
import { queryFlag } from '../../src/lib/query-flag.js';

describe('queryFlag: every boolean query parameter (issue 14)', () => {
  it('takes 1, true and nothing as true, 0 and false as false, absent as the fallback', () => {
    expect(['1', 'true', ''].map((raw) => queryFlag('x', raw))).to.deep.equal([true, true, true]);
    expect(['0', 'false'].map((raw) => queryFlag('x', raw, true))).to.deep.equal([false, false]);
    expect([queryFlag('x', undefined), queryFlag('x', undefined, true)]).to.deep.equal([false, true]);
  });

  it('refuses anything else with a ValidationError naming the parameter, a repeated one too', () => {
    for (const raw of ['yes', 'TRUE', '2', ['1', '1']]) {
      expect(() => queryFlag('download', raw)).to.throw(ValidationError, /^Expected true, false, 1, 0 or nothing for download but received /);
    }
  });
});
