/** The command table: every verb of the command-line contract (PRODUCT.md). */
import type { Command } from './command.ts';
import { init } from './init.ts';
import { dns } from './dns.ts';
import { user } from './user.ts';
import { authenticate } from './authenticate.ts';
import { alias } from './alias.ts';
import { serve } from './serve.ts';
import { dev } from './dev.ts';
import { queue } from './queue.ts';
import { pending } from './later.ts';

export const commands: Command[] = [
  init,
  serve,
  dev,
  user,
  authenticate,
  alias,
  dns,
  queue,
  ...pending,
];
