import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveAddress, type AliasLookup } from './resolve.ts';

const domains: Record<string, { local: string; targets: string[] }[]> = {
  'example.test': [
    { local: 'sales', targets: ['alice@example.test', 'bob@remote.example'] },
    { local: 'alice', targets: ['alice@gmail.example'] },
    { local: 'loop1', targets: ['loop2@example.test'] },
    { local: 'loop2', targets: ['loop1@example.test'] },
  ],
  'catch.test': [
    { local: 'info', targets: ['info@remote.example'] },
    { local: '*', targets: ['me@gmail.example'] },
  ],
};
const lookup: AliasLookup = (d) => domains[d];

const cases: [string, string[]][] = [
  ['sales@example.test', ['alice@gmail.example', 'bob@remote.example']],
  ['sales+news@example.test', ['alice@gmail.example', 'bob@remote.example']],
  ['nobody@example.test', []],
  ['loop1@example.test', []],
  ['info@catch.test', ['info@remote.example']],
  ['anything@catch.test', ['me@gmail.example']],
  ['x@remote.example', ['x@remote.example']],
];
for (const [address, want] of cases) {
  test(`resolve ${address}`, () => assert.deepEqual(resolveAddress(address, lookup).sort(), want));
}
