import { expect } from 'chai';
import { UnprocessableImageError } from '../../src/errors.js';
import { checkOutputBudget, outputPixels, outputSize, withinBudget } from '../../src/images/output-size.js';
import { negotiateFormat, type TransformSpec } from '../../src/images/transform-spec.js';

const SOURCE = { width: 100, height: 60, orientation: 1, pages: 1 };

describe('output size and budgets of a transform (issue 12, item 8)', () => {
  describe('outputSize follows sharp\'s resize rules (each row measured with sharp on a 100x60 image)', () => {
    const rows: Array<[TransformSpec['fit'], number | undefined, number | undefined, [number, number]]> = [
      ['cover', 200, 50, [100, 50]], ['cover', 300, 300, [100, 60]], ['cover', 50, 200, [50, 60]], ['cover', 80, 40, [80, 40]],
      ['cover', 200, undefined, [100, 60]], ['cover', undefined, 30, [50, 30]],
      ['contain', 200, 50, [200, 50]], ['contain', 300, 300, [300, 300]], ['contain', 50, 200, [50, 200]], ['contain', 80, 40, [80, 40]],
      ['contain', 200, undefined, [200, 60]], ['contain', undefined, 30, [50, 30]],
      ['fill', 200, 50, [100, 50]], ['fill', 300, 300, [100, 60]], ['fill', 50, 200, [50, 60]], ['fill', 80, 40, [80, 40]],
      ['fill', 200, undefined, [100, 60]], ['fill', undefined, 30, [100, 30]],
      ['inside', 200, 50, [83, 50]], ['inside', 300, 300, [100, 60]], ['inside', 50, 200, [50, 30]], ['inside', 80, 40, [67, 40]],
      ['inside', 200, undefined, [100, 60]], ['inside', undefined, 30, [50, 30]],
      ['outside', 200, 50, [100, 60]], ['outside', 300, 300, [100, 60]], ['outside', 50, 200, [100, 60]], ['outside', 80, 40, [80, 48]],
      ['outside', 200, undefined, [100, 60]], ['outside', undefined, 30, [50, 30]],
    ];
    for (const [fit, width, height, [w, h]] of rows) {
      it(`fit=${fit} w=${width ?? '-'} h=${height ?? '-'} → ${w}x${h}`, () => {
        expect(outputSize({ fit, width, height }, SOURCE)).to.deep.equal({ width: w, height: h });
      });
    }

    it('with enlarge: the requested box, or the aspect-kept scale', () => {
      expect(outputSize({ width: 300, height: 300, enlarge: true }, SOURCE)).to.deep.equal({ width: 300, height: 300 });
      expect(outputSize({ width: 400, enlarge: true }, SOURCE)).to.deep.equal({ width: 400, height: 240 });
      expect(outputSize({ width: 400, height: 400, fit: 'inside', enlarge: true }, SOURCE)).to.deep.equal({ width: 400, height: 240 });
    });

    it('applies EXIF orientation, crop and rotate', () => {
      expect(outputSize({}, { ...SOURCE, orientation: 6 })).to.deep.equal({ width: 60, height: 100 });
      expect(outputSize({ crop: { left: 0, top: 0, width: 40, height: 20 }, width: 20 }, SOURCE)).to.deep.equal({ width: 20, height: 10 });
      expect(outputSize({ rotate: 90, width: 50 }, SOURCE)).to.deep.equal({ width: 30, height: 50 });
    });
  });

  it('counts every frame of an animated source for the formats that keep them', () => {
    const animated = { width: 24, height: 20, orientation: 1, pages: 3 };
    expect(outputPixels({}, 'gif', animated)).to.equal(24 * 20 * 3);
    expect(outputPixels({}, 'webp', animated)).to.equal(24 * 20 * 3);
    expect(outputPixels({}, 'avif', animated)).to.equal(24 * 20);
  });

  it('refuses an output over its format\'s budget with 422 naming the size and the limit; formats without a budget pass', () => {
    const budgets = { avif: 5000 };
    expect(withinBudget({}, 'avif', SOURCE, budgets)).to.equal(false);
    expect(withinBudget({ width: 50 }, 'avif', SOURCE, budgets)).to.equal(true);
    expect(withinBudget({}, 'webp', SOURCE, budgets)).to.equal(true);
    expect(() => checkOutputBudget({}, 'avif', SOURCE, budgets)).to.throw(UnprocessableImageError, 'AVIF output of 100x60 exceeds the limit of 5000 pixels for AVIF');
    expect(() => checkOutputBudget({ width: 50 }, 'avif', SOURCE, budgets)).not.to.throw();
  });

  it('negotiateFormat passes over a format that is not allowed', () => {
    const accept = 'image/avif,image/webp,*/*';
    expect(negotiateFormat(accept, 'png')).to.equal('avif');
    expect(negotiateFormat(accept, 'png', (format) => format !== 'avif')).to.equal('webp');
    expect(negotiateFormat(accept, 'png', () => false)).to.equal('png');
  });
});
