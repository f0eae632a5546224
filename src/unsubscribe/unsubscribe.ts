/**
 * A recipient unsubscribes (through the one-click POST, endpoint.ts, or a
 * mail to the mailto: address, mailto.ts): the address joins its sending
 * domain's suppression list with reason UNSUBSCRIBE, and a Subscription
 * event, in SES's shape, is recorded for the last message that carried the
 * link, in the same commit. SES names a contact list and topics; posta has
 * neither, so the list and topic are the ses:contact-list and ses:topic tags
 * of the message (from ListManagementOptions), and the unsubscribe is from
 * everything the domain sends (unsubscribeAll). Once suppressed, a second
 * request (receivers retry, people click twice) records nothing more.
 */
import type { Logger } from '../log/log.ts';
import type { QueueStore } from '../store/queue-store.ts';
import { CONTACT_LIST_TAG, TOPIC_TAG } from './fields.ts';
import type { Link } from './links.ts';

/** What an unsubscribe reads and writes: where the queue is, so every node knows it. */
export type UnsubscribeStore = Pick<
  QueueStore,
  'unsubscribeLink' | 'mailTags' | 'recordEvents' | 'suppressions'
>;

export interface UnsubscribeDeps {
  store: UnsubscribeStore;
  log: Logger;
}

/** How the recipient asked: SES's `source` of the Subscription event. */
export type How = 'one-click' | 'mailto';

/** False when the address was already unsubscribed. */
export async function unsubscribe(deps: UnsubscribeDeps, link: Link, how: How): Promise<boolean> {
  const [entry] = await deps.store.suppressions.list({
    domains: [link.domain],
    address: link.address,
  });
  if (entry?.reason === 'UNSUBSCRIBE') return false;
  const tags = await deps.store.mailTags(link.message);
  const topic = tags[TOPIC_TAG]?.[0];
  const topics = (status: string) =>
    topic ? [{ topicName: topic, subscriptionStatus: status }] : [];
  const now = Date.now();
  await deps.store.recordEvents({
    events: [
      {
        message: link.message,
        type: 'Subscription',
        at: now,
        recipients: [link.address],
        detail: {
          contactList: tags[CONTACT_LIST_TAG]?.[0] ?? link.domain,
          timestamp: new Date(now).toISOString(),
          // SES's source for an unsubscribe through the List-Unsubscribe field
          source: 'UnsubscribeHeader',
          method: how,
          emailAddress: link.address,
          newTopicPreferences: { unsubscribeAll: true, topicSubscriptionStatus: topics('OptOut') },
          oldTopicPreferences: { unsubscribeAll: false, topicSubscriptionStatus: topics('OptIn') },
        },
      },
    ],
    suppress: [
      { domain: link.domain, address: link.address, reason: 'UNSUBSCRIBE', message: link.message },
    ],
  });
  deps.log.info(
    { about: link.message, domain: link.domain, rcpt: link.address, how },
    'unsubscribed',
  );
  return true;
}
