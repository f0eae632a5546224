/**
 * Where mail for a local address goes (pure): the exact alias, else the alias
 * of the address without its +suffix, else the domain's catch-all "*".
 * Targets that are themselves local aliases are expanded in turn, up to
 * MAX_DEPTH levels, so a loop of aliases ends instead of spinning.
 */
import { CATCH_ALL, type Alias } from './aliases.ts';

export const MAX_DEPTH = 10;

/** The aliases of a local domain, or undefined when the domain is not local. */
export type AliasLookup = (domain: string) => readonly Alias[] | undefined;

export function findAlias(local: string, aliases: readonly Alias[]): Alias | undefined {
  const exact = aliases.find((a) => a.local === local);
  if (exact) return exact;
  const plus = local.indexOf('+');
  if (plus > 0) {
    const base = aliases.find((a) => a.local === local.slice(0, plus));
    if (base) return base;
  }
  return aliases.find((a) => a.local === CATCH_ALL);
}

/**
 * The final (non-alias) addresses for `address`, or [] when it has no alias
 * and no catch-all in a local domain. Remote addresses resolve to themselves.
 */
export function resolveAddress(address: string, lookup: AliasLookup, depth = 0): string[] {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  const aliases = lookup(domain);
  if (!aliases) return [address];
  if (depth >= MAX_DEPTH) return [];
  const alias = findAlias(local, aliases);
  if (!alias) return [];
  const out = new Set<string>();
  for (const t of alias.targets) {
    if (t === address) continue;
    for (const r of resolveAddress(t, lookup, depth + 1)) out.add(r);
  }
  return [...out];
}
