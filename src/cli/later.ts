/**
 * Verbs of the command-line contract whose capability has not landed yet. Each
 * is registered with its help so scripts see the whole interface; running one
 * says so plainly and exits 1.
 */
import { PostaError } from '../errors.ts';
import type { Command } from './command.ts';

function later(
  name: string,
  summary: string,
  usage: string,
  capability: string,
): { command: Command; summary: string } {
  const command: Command = {
    name,
    help: `Usage: ${usage}\n\n${summary[0]?.toUpperCase()}${summary.slice(1)}.\nNot available yet: ${capability} is still being built.`,
    options: {},
    run() {
      return Promise.reject(
        new PostaError(`posta ${name} is not available yet: ${capability} is still being built.`),
      );
    },
  };
  return { command, summary };
}

export const pending: { command: Command; summary: string }[] = [
  later(
    'doctor',
    'check live DNS and the server against what they should be',
    'posta doctor DOMAIN [--json]',
    'the doctor',
  ),
];
