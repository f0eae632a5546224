/**
 * The commented posta.toml that `posta init` writes, generated from the schema
 * so that every key's documentation and default appear exactly once in the code.
 */
import { z } from 'zod';
import { stringify } from 'smol-toml';
import { ConfigSchema } from './schema.ts';

interface JsonSchema {
  description?: string;
  default?: unknown;
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  examples?: unknown[];
}

type Values = Record<string, unknown>;

/**
 * `values` fills keys that have no default (hostname) or overrides defaults;
 * a section is a nested object. Optional sections not given are written
 * commented out, as an example.
 */
export function configTemplate(values: Values): string {
  const root = z.toJSONSchema(ConfigSchema, { io: 'input' }) as JsonSchema;
  const out: string[] = [
    '# posta server settings. Every key is shown with its default; see the README.',
    '',
  ];
  const sections: [string, JsonSchema][] = [];
  for (const [key, prop] of Object.entries(root.properties ?? {})) {
    if (prop.type === 'object') sections.push([key, prop]);
    else out.push(...keyLines(key, prop, values[key]));
  }
  for (const [name, section] of sections) {
    if (!section.properties && section.examples) {
      // a table of tables ([webhooks.NAME]): the example, commented out
      const example = stringify({ [name]: section.examples[0] }).trim();
      out.push(`# ${section.description ?? ''}`, ...example.split('\n').map((l) => `# ${l}`), '');
      continue;
    }
    out.push(`# ${section.description ?? ''}`);
    const given = values[name] as Values | undefined;
    const example = !('default' in section) && given === undefined;
    const c = example ? '# ' : '';
    out.push(`${c}[${name}]`);
    // Sub-tables go last: a key written after one would belong to it.
    const tables: string[] = [];
    for (const [key, prop] of Object.entries(section.properties ?? {})) {
      if (prop.type === 'object') {
        tables.push(...tableLines(name, key, prop));
        continue;
      }
      const fallback = 'default' in prop ? undefined : `/etc/posta/${key}.pem`;
      const value = given?.[key] ?? (example ? (prop.examples?.[0] ?? fallback) : undefined);
      const lines = keyLines(key, prop, value);
      out.push(...lines.map((l) => (l === '' || l.startsWith('#') ? l : c + l)));
    }
    out.push(...tables);
  }
  return out.join('\n');
}

function keyLines(key: string, prop: JsonSchema, value: unknown): string[] {
  const v = value ?? prop.default;
  const line = stringify({ [key]: v }).trim();
  return [`# ${prop.description ?? ''}`, line, ''];
}

/** Tables in a section, one per name: the example, commented out, as TOML has it. */
function tableLines(section: string, key: string, prop: JsonSchema): string[] {
  const example = stringify({ [section]: { [key]: prop.examples?.[0] ?? {} } }).trim();
  return [`# ${prop.description ?? ''}`, ...example.split('\n').map((l) => `# ${l}`), ''];
}
