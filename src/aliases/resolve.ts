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
 * An address is expanded again only when reached at a smaller depth than
 * before, so a mesh of aliases costs at most (addresses x MAX_DEPTH) lookups,
 * not (targets ^ MAX_DEPTH).
 */
export function resolveAddress(address: string, lookup: AliasLookup): string[] {
  const out = new Set<string>();
  const seenAt = new Map<string, number>();
  const walk = (a: string, depth: number): void => {
    const at = a.lastIndexOf('@');
    const aliases = lookup(a.slice(at + 1));
    if (!aliases) {
      out.add(a);
      return;
    }
    if (depth >= MAX_DEPTH || (seenAt.get(a) ?? Infinity) <= depth) return;
    seenAt.set(a, depth);
    const alias = findAlias(a.slice(0, at), aliases);
    for (const t of alias?.targets ?? []) if (t !== a) walk(t, depth + 1);
  };
  walk(address, 0);
  return [...out];
}
