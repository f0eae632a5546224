/**
 * Listen and server endpoints written as "ADDRESS:PORT", with IPv6 addresses in
 * brackets: "0.0.0.0:25", "[::]:587", "127.0.0.1:53". Pure.
 */
import { isIP } from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
}

export function parseEndpoint(text: string): Endpoint | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text);
  if (!m) return null;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) return null;
  if (m[1] !== undefined ? isIP(host) !== 6 : isIP(host) !== 4) return null;
  return { host, port };
}

/** "HOST:PORT" where HOST is a domain name or an address (a relay host). */
export function parseHostPort(text: string): Endpoint | null {
  const ip = parseEndpoint(text);
  if (ip) return ip;
  const m = /^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535 || !m[1]?.includes('.')) return null;
  return { host: m[1].toLowerCase(), port: Number(m[2]) };
}

export function formatEndpoint(e: Endpoint): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
