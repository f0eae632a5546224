import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReportBudget } from './budget.ts';

const HOUR = 3600_000;

test('the report budget: what fits is taken, what does not is refused whole, and it refills over the hour', () => {
  const b = new ReportBudget(1000, 0);
  assert.equal(b.take(600, 0), true);
  assert.equal(b.take(600, 0), false, '400 left: refused, nothing taken');
  assert.equal(b.take(400, 0), true);
  assert.equal(b.any(0), false, 'spent');
  assert.equal(b.take(1, HOUR / 1000), true, 'a thousandth of an hour brings back 1 byte');
  assert.equal(b.any(HOUR / 1000), false);
  assert.equal(b.take(1000, 2 * HOUR), true, 'full again after an hour, never more than full');
  assert.equal(b.take(1, 2 * HOUR), false);
});
