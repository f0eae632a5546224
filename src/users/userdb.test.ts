import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserFile } from './userdb.ts';

const H = '$scrypt$ln=10,r=8,p=1$c2FsdA$aGFzaA';

test('comments and blank lines survive an edit', () => {
  const text = `# header\n\ni ${H}\n# about bob\nbob ${H} send-as=domain\n`;
  const f = UserFile.parse('users', text);
  assert.equal(f.toString(), text);
  f.delete('i');
  f.set({ local: 'carol', hash: H, sendAsDomain: false });
  assert.equal(f.toString(), `# header\n\n# about bob\nbob ${H} send-as=domain\ncarol ${H}\n`);
});

test('accounts are found by normalised local part', () => {
  const f = UserFile.parse('users', `First.Last ${H}\n`);
  assert.equal(f.get('first.last')?.hash, H);
  assert.equal(f.get('first.last')?.sendAsDomain, false);
});

const bad: [string, RegExp][] = [
  [`i plaintext`, /users line 1: the second field is not a posta password hash/],
  [`bad..local ${H}`, /users line 1: "bad..local" is not a valid local part/],
  [`i ${H} admin`, /unknown option "admin"/],
];
for (const [text, want] of bad) {
  test(`a bad users line is refused with its line number: ${text.slice(0, 12)}`, () => {
    assert.throws(() => UserFile.parse('users', text), want);
  });
}
