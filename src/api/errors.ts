/**
 * The one error type of the HTTP APIs: what went wrong, in posta's words,
 * and what each wire format calls it. The send service and the stores throw
 * ApiError with a kind; ses-v2 writes it as status + x-amzn-ErrorType +
 * {"message"}, ses-v1 as <ErrorResponse> XML, each with SES's codes, since
 * the SDKs pick the exception class (and whether to retry) by that code
 * (research/ses-api.md §1.4, §2.2); resend as {statusCode, name, message}
 * with Resend's names.
 */
export type ApiErrorKind =
  /** The message cannot be sent as it is: a sender the key may not use, a bad header. */
  | 'rejected'
  /** The request is malformed: a missing field, an invalid address. */
  | 'bad-request'
  /** Over the key's send rate (retried by the SDKs). */
  | 'rate'
  /** Over the key's 24-hour quota. */
  | 'daily'
  | 'not-found'
  | 'exists'
  /** An Idempotency-Key reused with another request, or while its first is in progress (Resend). */
  | 'conflict'
  /** posta could not store it (a full disk, a failed sync): try again. */
  | 'unavailable'
  /** Authentication: see AuthFailure in api/http.ts. */
  | 'auth';

export class ApiError extends Error {
  readonly kind: ApiErrorKind;
  /**
   * Which case of the kind, where a wire format has a code of its own for
   * it: for "auth", which SigV4 or Bearer failure (sigv4.ts, http.ts); for
   * "rejected", "sender" when the key may not send from that address
   * (Resend answers that one 403); "template" (v1's TemplateDoesNotExist,
   * InvalidTemplate), "template-data", "next-token".
   */
  readonly detail: string | undefined;
  constructor(kind: ApiErrorKind, message: string, detail?: string) {
    super(message);
    this.kind = kind;
    this.detail = detail;
  }
}
