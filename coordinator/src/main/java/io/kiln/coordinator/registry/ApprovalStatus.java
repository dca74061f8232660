package io.kiln.coordinator.registry;

import io.kiln.protocol.proto.ModelApprovalStatus;
import java.util.Arrays;
import java.util.stream.Collectors;

/** A model version's approval, with SageMaker's names (they are what the API and CLI show). */
public enum ApprovalStatus {
  PendingManualApproval(ModelApprovalStatus.PENDING_MANUAL_APPROVAL),
  Approved(ModelApprovalStatus.APPROVED),
  Rejected(ModelApprovalStatus.REJECTED);

  private final ModelApprovalStatus proto;

  ApprovalStatus(ModelApprovalStatus proto) {
    this.proto = proto;
  }

  public ModelApprovalStatus proto() {
    return proto;
  }

  public static ApprovalStatus of(ModelApprovalStatus p) {
    for (ApprovalStatus s : values()) if (s.proto == p) return s;
    throw new IllegalStateException("approval status " + p + " in the journal");
  }

  /** Parses a user's status (case-insensitive); names the accepted ones when it is not one. */
  public static ApprovalStatus parse(String s) {
    for (ApprovalStatus v : values()) if (v.name().equalsIgnoreCase(s == null ? "" : s.trim())) return v;
    throw new RegistryException(RegistryException.Kind.INVALID, "invalid approval status '" + s + "': use one of "
        + Arrays.stream(values()).map(Enum::name).collect(Collectors.joining(", ")));
  }
}
