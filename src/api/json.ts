/**
 * Reading the JSON bodies of SES v2 (rest-json): each member checked for its
 * type as it is read, and a wrong one named in SES's terms
 * ("Content.Simple.Subject must be an object."), as BadRequestException.
 * `path` is the dotted place of the object being read, "" at the top.
 */
import { ApiError } from './errors.ts';

export type Json = Record<string, unknown>;

export function parse(body: Buffer): Json {
  try {
    const v: unknown = JSON.parse(body.toString('utf8') || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  } catch {
    // below
  }
  throw new ApiError('bad-request', 'The request body is not a JSON object.');
}

export function obj(o: Json, name: string, path: string): Json | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${path}${name} must be an object`);
  return v as Json;
}

export function str(o: Json, name: string, path: string): string | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${path}${name} must be a string`);
  return v;
}

export function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw bad(`${what} is required`);
  return v;
}

export function strings(o: Json, name: string, path: string): string[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw bad(`${path}${name} must be a list of strings`);
  }
  return v as string[];
}

export function list(o: Json, name: string, path: string): Json[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((e) => !e || typeof e !== 'object')) {
    throw bad(`${path}${name} must be a list of objects`);
  }
  return v as Json[];
}

export function bad(text: string): ApiError {
  return new ApiError('bad-request', `${text}.`);
}

export function base64(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw bad(`${what} must be base64`);
  return Buffer.from(clean, 'base64');
}
