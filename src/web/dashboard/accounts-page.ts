/**
 * The accounts of a domain on the dashboard's Domains page: listed, added
 * with a password, given a new password, removed. Each edit goes through the
 * functions `posta user add|passwd|del` calls (users/accounts.ts), so
 * domains/DOMAIN/users is written exactly as the CLI writes it (argon2id
 * hash, same lock, atomic replace); the running server re-reads the folder
 * as it does after the CLI. A hash is never shown, a password never echoed.
 */
import { html } from 'hono/html';
import type { Context, Env as HonoEnv, Hono } from 'hono';
import { PostaError } from '../../errors.ts';
import {
  addUser,
  changePassword,
  deleteUser,
  listUsers,
  MIN_PASSWORD_LENGTH,
  parseAccountAddress,
} from '../../users/accounts.ts';
import type { Logger } from '../../log/log.ts';
import { formField, hidden, hxPost, removeButton, type Html, type View } from './pages.ts';

/** What the page shows of an account: never its hash. */
export interface AccountView {
  address: string;
  sendAsDomain: boolean;
}

export async function domainAccounts(dir: string, domain: string): Promise<AccountView[]> {
  return (await listUsers(dir, domain)).map((u) => ({
    address: u.address,
    sendAsDomain: u.account.sendAsDomain,
  }));
}

export function accountsSection(domain: string, accounts: AccountView[], v: View): Html {
  const passwd = `/domains/${domain}/accounts/passwd`;
  return html`<h3>Accounts</h3>
    <p class="hint">
      Written to domains/${domain}/users as <code>posta user</code> writes it; only an argon2id hash
      of each password is kept. An account sends mail by SMTP AUTH and logs in here to see its own.
    </p>
    ${
      accounts.length === 0
        ? html`<p>No accounts.</p>`
        : html`<table class="accounts" id="accounts-${domain}">
            <thead>
              <tr>
                <th scope="col">Account</th>
                <th scope="col">May send as</th>
                <th scope="col">New password</th>
                <th scope="col"><span class="sr">Action</span></th>
              </tr>
            </thead>
            <tbody>
              ${accounts.map(
                (a) =>
                  html`<tr>
                    <td>${a.address}</td>
                    <td>${a.sendAsDomain ? `any address of ${domain}` : 'itself'}</td>
                    <td>
                      <form method="post" action="${passwd}" class="inline" ${hxPost(passwd)}>
                        ${hidden(v.csrf)}
                        <input type="hidden" name="address" value="${a.address}" />
                        <label class="sr" for="pw-${a.address}">New password of ${a.address}</label>
                        <input
                          id="pw-${a.address}"
                          name="password"
                          type="password"
                          autocomplete="new-password"
                          minlength="${MIN_PASSWORD_LENGTH}"
                          required
                        />
                        <button type="submit" aria-label="Change the password of ${a.address}">
                          Change
                        </button>
                      </form>
                    </td>
                    <td>
                      ${removeButton(
                        `/domains/${domain}/accounts/remove`,
                        { address: a.address },
                        `Remove the account ${a.address}`,
                        v,
                      )}
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    <form
      method="post"
      action="/domains/${domain}/accounts"
      class="row"
      ${hxPost(`/domains/${domain}/accounts`)}
    >
      ${hidden(v.csrf)}
      <label for="account-${domain}">Account (local part, or the whole address)</label>
      <input id="account-${domain}" name="address" autocomplete="off" required />
      <label for="password-${domain}"
        >Password for the account (at least ${MIN_PASSWORD_LENGTH} characters)</label
      >
      <input
        id="password-${domain}"
        name="password"
        type="password"
        autocomplete="new-password"
        minlength="${MIN_PASSWORD_LENGTH}"
        required
      />
      <label class="check"
        ><input type="checkbox" name="send_as_domain" value="1" /> It may send as any address of
        ${domain}</label
      >
      <button type="submit">Add the account</button>
    </form>`;
}

/** The address a form names, which must be of `domain`. */
function addressOf(typed: string, domain: string): string {
  const t = typed.trim();
  const a = parseAccountAddress(t.includes('@') ? t : `${t}@${domain}`);
  if (a.domain !== domain) {
    throw new PostaError(`${t} is not an address of ${domain}; add it under its own domain.`);
  }
  return `${a.local}@${a.domain}`;
}

/**
 * POST /domains/:domain/accounts (add), .../passwd, .../remove. `served`
 * says whether a domain is this server's; `failed` answers a refused edit
 * with the domains page and its sentence; a done edit redirects to it.
 */
export function accountRoutes<E extends HonoEnv>(
  app: Hono<E>,
  o: {
    dir: string;
    log: Logger;
    served: (domain: string) => boolean;
    clientIp: (c: Context<E>) => string;
    failed: (c: Context<E>, error: string, status: 400 | 404) => Response | Promise<Response>;
  },
): void {
  app.post('/domains/:domain/accounts/:verb?', async (c) => {
    const domain = c.req.param('domain');
    const verb = c.req.param('verb');
    if (!o.served(domain)) return o.failed(c, `No domain ${domain} is served here.`, 404);
    if (verb !== undefined && verb !== 'passwd' && verb !== 'remove') {
      return o.failed(c, `No such action: ${verb}.`, 404);
    }
    const body = await c.req.parseBody();
    try {
      const address = addressOf(formField(body, 'address'), domain);
      const password = formField(body, 'password', false);
      let done: string;
      if (verb === undefined) {
        await addUser(o.dir, address, password, { sendAsDomain: body.send_as_domain === '1' });
        done = `Added the account ${address}.`;
      } else if (verb === 'passwd') {
        await changePassword(o.dir, address, password);
        done = `Changed the password of ${address}.`;
      } else {
        await deleteUser(o.dir, address);
        done = `Removed the account ${address}.`;
      }
      o.log.info(
        { account: address, change: verb ?? 'add', ip: o.clientIp(c) },
        'dashboard: accounts changed',
      );
      return c.redirect(`/domains?done=${encodeURIComponent(done)}`, 303);
    } catch (err) {
      if (!(err instanceof PostaError)) throw err;
      return o.failed(c, err.message, 400);
    }
  });
}
