package io.kiln.coordinator.registry;

/**
 * Which approval changes are allowed. A version may be approved or rejected from any other status
 * (an approval can be revoked by rejecting, a rejection reconsidered), but a reviewed version
 * never goes back to PendingManualApproval: the review happened and its history says so.
 */
final class Approvals {
  private Approvals() {}

  /** Why {@code v} cannot move to {@code to}, or null when it can. */
  static String refusal(ModelVersion v, ApprovalStatus to) {
    String which = "version " + v.version() + " of " + v.group();
    if (v.status() == to) return which + " is already " + to;
    if (to == ApprovalStatus.PendingManualApproval) {
      return which + " was already reviewed (" + v.status() + "); it cannot go back to PendingManualApproval: "
          + "approve or reject it";
    }
    return null;
  }
}
