/** The events of a message as `posta events --json` prints them (SES's event JSON). */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta } from './posta.ts';

export async function events<T extends { eventType: string }>(
  dir: string,
  id: string,
): Promise<T[]> {
  const r = await posta(['events', '--message', id, '--json', '--dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

/** The events of `id` once one of type `type` is there (within 20 s). */
export async function eventsUntil<T extends { eventType: string }>(
  dir: string,
  id: string,
  type: string,
): Promise<T[]> {
  for (let i = 0; i < 200; i++) {
    const list = await events<T>(dir, id);
    if (list.some((e) => e.eventType === type)) return list;
    await sleep(100);
  }
  assert.fail(`no ${type} event for ${id}: ${JSON.stringify(await events(dir, id))}`);
}
