/**
 * Rendering SES templates. SES templates are Handlebars: `{{name}}`,
 * `{{#if}}`, `{{#each}}`, `{{#with}}`, inline partials; TemplateData is a
 * JSON object given as a string (research/ses-api.md §1.1). The subject and
 * the text part are rendered as they are (noEscape); the html part escapes
 * what `{{x}}` inserts (`<` as `&lt;`, as Handlebars does) and inserts
 * `{{{x}}}` as it is.
 *
 * A template is compiled with knownHelpersOnly: only Handlebars' own
 * helpers exist (posta registers none), so a mustache with arguments that
 * names anything else is refused when the template is stored, not when
 * mail is sent. A value the data lacks renders as nothing, as the local SES
 * emulators do (SES itself reports a Rendering Failure event instead).
 * Handlebars' prototype-access checks stay at their defaults (no inherited
 * properties), and its console logger is silenced: posta's stdout is its
 * JSON log.
 *
 * Rendering runs on the event loop, so its work is bounded: a template is
 * at most 500 KB (SES's limit); one rendering may read its data at most
 * MAX_READS times (loops, sections and recursive partials all read the
 * data, so this bounds them: some 100 ms of CPU) and read strings of at
 * most MAX_READ_CHARS characters in all (each read into html is escaped,
 * a copy made a character at a time); its parts together come to at most
 * MAX_RENDERED characters, checked before anything copies them. Compiling
 * costs the most (some 3 µs a character of template, so a dense 500 KB
 * one holds the event loop for a second or two): compiled parts are kept
 * by their source, so that a template compiles once, not once a send.
 */
import type Handlebars from 'handlebars';
import { compose } from './compose.ts';
import { ApiError } from './errors.ts';

type Hb = typeof Handlebars;
let loading: Promise<Hb> | undefined;

/** Handlebars, loaded at its first use: a server that renders no template never pays its 2 MB and 20 ms. */
function handlebars(): Promise<Hb> {
  loading ??= import('handlebars').then(({ default: h }) => {
    const hb = h.create();
    // the logger is Handlebars' one module-wide object: above "error", nothing prints
    hb.logger.level = 4;
    return hb;
  });
  return loading;
}

const OPTIONS = { knownHelpersOnly: true } as const;
const TEXT_OPTIONS = { ...OPTIONS, noEscape: true } as const;

/** SES's limit on a template: its parts together, in bytes. */
export const MAX_TEMPLATE = 500 * 1024;
/** How often one rendering may read its data (at some 0.5 µs a read with Handlebars' work between). */
export const MAX_READS = 200_000;
/** The characters of the strings one rendering reads (some 100 ms to escape them all). */
export const MAX_READ_CHARS = 2_000_000;
/** The rendered parts together, in characters. */
export const MAX_RENDERED = 10 * 1024 * 1024;

/** The three parts of a template; a missing one stays missing in the message. */
export interface TemplateContent {
  subject?: string | undefined;
  text?: string | undefined;
  html?: string | undefined;
}

export type TemplateData = Record<string, unknown>;

/** A template ready to render many times (SendBulkEmail). */
export interface CompiledTemplate {
  render(data: TemplateData, budget?: ReadBudget): TemplateContent;
}

const PARTS = ['subject', 'text', 'html'] as const;

function invalid(part: string, err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const why = (err as Error).message.split('\n')[0] ?? '';
  return new ApiError('bad-request', `The template's ${part} is not valid: ${why}`, 'template');
}

function checkSize(c: TemplateContent): void {
  const size = PARTS.reduce((n, part) => n + Buffer.byteLength(c[part] ?? ''), 0);
  if (size > MAX_TEMPLATE) {
    throw new ApiError(
      'bad-request',
      `The template is ${size} bytes; at most ${MAX_TEMPLATE} are allowed.`,
      'template',
    );
  }
}

/**
 * Refuses a template that will not compile, is over MAX_TEMPLATE, or holds
 * a control character (the XML of SES v1 cannot carry one).
 */
export async function checkTemplate(c: TemplateContent): Promise<void> {
  checkSize(c);
  const hb = await handlebars();
  for (const part of PARTS) {
    const source = c[part];
    if (source === undefined) continue;
    // eslint-disable-next-line no-control-regex -- XML 1.0 has no way to carry these
    if (/[\x00-\x08\x0b\x0c\x0e-\x1f]/.test(source)) {
      throw new ApiError(
        'bad-request',
        `The template's ${part} contains a control character.`,
        'template',
      );
    }
    try {
      hb.precompile(source, part === 'html' ? OPTIONS : TEXT_OPTIONS);
    } catch (err) {
      throw invalid(part, err);
    }
  }
}

/**
 * What renderings may still read: one rendering has its own; the entries of
 * one bulk send share one (of BULK_BUDGET renderings), so that 50 of them
 * cannot take 50 times as long.
 */
export interface ReadBudget {
  reads: number;
  chars: number;
}

export const BULK_BUDGET = 5;

export function readBudget(renderings = 1): ReadBudget {
  return { reads: MAX_READS * renderings, chars: MAX_READ_CHARS * renderings };
}

/**
 * `data` behind proxies that count every read, and the characters of every
 * string read, against `budget` (JSON data: plain objects, arrays and
 * primitives, no getters).
 */
function metered(data: TemplateData, budget: ReadBudget): TemplateData {
  const proxies = new WeakMap<object, object>();
  const handler: ProxyHandler<object> = {
    get(target, key) {
      const v: unknown = Reflect.get(target, key);
      if (typeof v === 'string') budget.chars -= v.length;
      if (--budget.reads < 0 || budget.chars < 0) {
        throw new ApiError(
          'bad-request',
          budget.reads < 0
            ? `The template reads its data more than ${MAX_READS} times: it loops or repeats too much.`
            : `The template reads more than ${MAX_READ_CHARS} characters of its data.`,
          'template',
        );
      }
      return v !== null && typeof v === 'object' ? wrap(v) : v;
    },
  };
  const wrap = (o: object): object => {
    let p = proxies.get(o);
    if (!p) proxies.set(o, (p = new Proxy(o, handler)));
    return p;
  };
  return wrap(data) as TemplateData;
}

type Delegate = (data: TemplateData) => string;

/**
 * Compiled parts by their source, the most recently used last, up to
 * CACHE_CHARS of source: a 3 KB template takes 9 ms to compile and a
 * fraction of one to render, and most sends use one of a few templates.
 * (Handlebars compiles on the first call of what compile() returns, and
 * keeps that.)
 */
const cache = new Map<string, Delegate>();
const CACHE_CHARS = 4 * 1024 * 1024;
let cachedChars = 0;

function compiled(hb: Hb, source: string, part: (typeof PARTS)[number]): Delegate {
  const key = `${part === 'html' ? 'h' : 't'}${source}`;
  let fn = cache.get(key);
  if (fn) {
    cache.delete(key);
  } else {
    fn = hb.compile<TemplateData>(source, part === 'html' ? OPTIONS : TEXT_OPTIONS);
    cachedChars += key.length;
  }
  cache.set(key, fn);
  for (const [k] of cache) {
    if (cachedChars <= CACHE_CHARS || k === key) break;
    cache.delete(k);
    cachedChars -= k.length;
  }
  return fn;
}

/** A stored template, or one given whole (which is checked for its size here and compiled when first rendered). */
export async function compileTemplate(c: TemplateContent): Promise<CompiledTemplate> {
  checkSize(c);
  const hb = await handlebars();
  const parts = PARTS.map((part) => {
    const source = c[part];
    return [part, source === undefined ? undefined : compiled(hb, source, part)] as const;
  });
  return {
    render(data, budget = readBudget()) {
      const input = metered(data, budget);
      const out: TemplateContent = {};
      let size = 0;
      for (const [part, fn] of parts) {
        if (!fn) continue;
        let r: string;
        try {
          r = fn(input);
        } catch (err) {
          // a syntax error surfaces at the first call; a helper's misuse, a
          // string past V8's longest or a recursion too deep at any
          throw invalid(part, err);
        }
        // the length of a string built by concatenation is known without copying it
        size += r.length;
        if (size > MAX_RENDERED) {
          throw new ApiError(
            'rejected',
            `The rendered message is over ${MAX_RENDERED} characters.`,
            'template',
          );
        }
        out[part] = r;
      }
      return { subject: out.subject, text: out.text, html: out.html };
    },
  };
}

/**
 * TemplateData (a JSON object in a string) read; absent is {}. `what` names
 * the member in the error.
 */
export function templateData(json: string | undefined, what: string): TemplateData {
  if (json === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new ApiError(
      'bad-request',
      `${what} is not valid JSON: ${(err as Error).message}.`,
      'template-data',
    );
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new ApiError('bad-request', `${what} must be a JSON object.`, 'template-data');
  }
  return v as TemplateData;
}

/**
 * The message a template makes with `data`, as MIME text, for
 * TestRenderEmailTemplate / TestRenderTemplate: no From or To, since none
 * is given.
 */
export async function renderedMessage(c: TemplateContent, data: TemplateData): Promise<string> {
  const r = (await compileTemplate(c)).render(data);
  const raw = await compose({ subject: r.subject ?? '', text: r.text, html: r.html });
  return raw.toString('utf8');
}
