// The bench scripts' shared flag parser.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchArgs } from '../../../bench/lib/args.ts';

describe('benchArgs', () => {
  const defaults = { n: 200, vault: '', quick: false };

  it('types each flag by its default, in both --flag value and --flag=value forms', () => {
    assert.deepEqual(benchArgs(defaults, []), { n: 200, vault: '', quick: false });
    assert.deepEqual(benchArgs(defaults, ['--n', '5000', '--vault=http://v', '--quick']), {
      n: 5000,
      vault: 'http://v',
      quick: true,
    });
  });

  it('refuses a number flag that is not a number, and unknown flags', () => {
    assert.throws(() => benchArgs(defaults, ['--n', '1e3x']), /--n: '1e3x' is not a number/);
    assert.throws(() => benchArgs(defaults, ['--n=']), /--n: '' is not a number/);
    assert.throws(() => benchArgs(defaults, ['--secrets', '1']), /Unknown option '--secrets'/);
  });
});
