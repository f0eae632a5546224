/**
 * Mail addresses and domain names: parsing, validation and the one normal
 * form posta stores and compares.
 *
 * - Domains are stored as lower-case A-labels (IDNA, RFC 5890): `Bücher.Example`
 *   becomes `xn--bcher-kva.example`. A domain needs two or more labels of
 *   letters, digits and inner hyphens, 63 bytes each, 253 in all (RFC 1035 §2.3.4).
 *   An "xn--" label must be a valid A-label, one that decodes and encodes back
 *   to itself (RFC 5891 §5.4); node:url passes invalid ones through unchanged.
 * - Local parts are NFC-normalised and lower-cased, as chasquid does: posta treats
 *   `I@example.com` and `i@example.com` as one account. Only dot-atom local parts
 *   (RFC 5322 §3.4.1) are accepted for accounts and aliases; UTF-8 is allowed
 *   (RFC 6531).
 *
 * Pure: no I/O.
 */
import { domainToASCII, domainToUnicode } from 'node:url';

export interface Address {
  local: string;
  domain: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// RFC 5322 §3.2.3 atext, plus any non-ASCII character (RFC 6531 §3.3).
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;

export function parseDomain(input: string): Parsed<string> {
  const raw = input.trim().replace(/\.$/, '');
  if (raw === '') return { ok: false, error: 'the domain is empty' };
  const ascii = domainToASCII(raw.toLowerCase());
  if (ascii === '') return { ok: false, error: `"${input}" is not a valid domain name` };
  const labels = ascii.split('.');
  if (labels.length < 2) {
    return {
      ok: false,
      error: `"${input}" is not a mail domain: it needs at least two labels, like example.com`,
    };
  }
  if (ascii.length > 253 || !labels.every((l) => LABEL.test(l))) {
    return {
      ok: false,
      error: `"${input}" is not a valid domain name: use letters, digits and hyphens, like mail.example.com`,
    };
  }
  const bad = labels.find((l) => !validALabel(l));
  if (bad) {
    return {
      ok: false,
      error: `"${input}" is not a valid domain name: ${bad} is not a valid A-label`,
    };
  }
  if (/^[0-9]+$/.test(labels.at(-1) ?? '')) {
    return { ok: false, error: `"${input}" is an address, not a domain name` };
  }
  return { ok: true, value: ascii };
}

export function parseLocalPart(input: string): Parsed<string> {
  const local = input.normalize('NFC').toLowerCase();
  if (local === '') return { ok: false, error: 'the local part (before the @) is empty' };
  if (Buffer.byteLength(local) > 64) {
    return { ok: false, error: `"${input}" is longer than 64 bytes (RFC 5321 §4.5.3.1.1)` };
  }
  if (!local.split('.').every((atom) => ATOM.test(atom))) {
    return {
      ok: false,
      error: `"${input}" is not a valid local part: use letters, digits and !#$%&'*+-/=?^_\`{|}~, with single dots between them`,
    };
  }
  return { ok: true, value: local };
}

export function parseAddress(input: string): Parsed<Address> {
  const at = input.lastIndexOf('@');
  if (at < 0) {
    return { ok: false, error: `"${input}" is not an address: it has no @, as in i@example.com` };
  }
  const local = parseLocalPart(input.slice(0, at));
  if (!local.ok) return local;
  const domain = parseDomain(input.slice(at + 1));
  if (!domain.ok) return domain;
  return { ok: true, value: { local: local.value, domain: domain.value } };
}

/** The part after the last "@", lower-cased (for an address already accepted). */
export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** The part before the last "@". */
export function localPartOf(address: string): string {
  return address.slice(0, Math.max(0, address.lastIndexOf('@')));
}

export function formatAddress(a: Address): string {
  return `${a.local}@${a.domain}`;
}

/** RFC 5891 §5.4: an "xn--" label decodes to U-labels that encode back to it. */
export function validALabel(label: string): boolean {
  if (!label.toLowerCase().startsWith('xn--')) return true;
  const u = domainToUnicode(label);
  return u !== '' && u !== label && domainToASCII(u) === label.toLowerCase();
}

/** The domain as a person reads it (U-labels), for messages and listings. */
export function displayDomain(domain: string): string {
  return domainToUnicode(domain) || domain;
}
