package io.kiln.coordinator.endpoints;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointReplica;
import io.kiln.protocol.proto.EndpointVariant;
import java.time.Instant;

/** The JSON shapes of endpoints in the REST API (docs/api.md "Endpoints"). */
final class EndpointViews {
  private EndpointViews() {}

  /** {@code dataPlaneUrl}: the data-plane listener's base URL (the endpoint's {@code invocationUrl} is below it). */
  static ObjectNode endpoint(EndpointState s, RoutingTable routing, String dataPlaneUrl, boolean full) {
    ObjectNode n = ApiJson.obj();
    n.put("name", s.name()).put("status", s.status().name()).put("generation", s.generation());
    n.put("invocationUrl", dataPlaneUrl + "/endpoints/" + s.name() + "/invocations");
    if (!s.failureReason().isEmpty()) n.put("failureReason", s.failureReason());
    n.put("createdBy", s.createdBy()).put("createdAt", Instant.ofEpochMilli(s.createdAt()).toString())
        .put("updatedAt", Instant.ofEpochMilli(s.updatedAt()).toString());
    n.put("inFlight", routing.endpointInFlight(s.name()));
    EndpointConfig shown = s.config() != null ? s.config() : s.pending();
    if (shown != null) variants(n.putArray("variants"), shown, s);
    if (s.pending() != null && s.config() != null) variants(n.putArray("pendingVariants"), s.pending(), null);
    if (shown != null) {
      if (shown.getIdleTimeoutMs() > 0) n.put("idleTimeoutMs", shown.getIdleTimeoutMs());
      if (shown.getMaxConcurrency() > 0) n.put("maxConcurrency", shown.getMaxConcurrency());
      if (shown.getMemoryMb() > 0) n.put("memoryMb", shown.getMemoryMb());
      if (!shown.getCaptureUri().isEmpty()) {
        n.putObject("dataCapture").put("uri", shown.getCaptureUri()).put("percent", shown.getCapturePercent());
      }
    }
    ArrayNode rs = n.putArray("replicas");
    for (EndpointReplica r : s.replicas()) {
      rs.addObject().put("variant", r.getVariant()).put("url", r.getUrl()).put("pid", r.getPid()).put("worker", r.getWorkerId())
          .put("generation", r.getGeneration()).put("inFlight", routing.inFlight(r.getUrl()));
    }
    if (full) {
      ArrayNode h = n.putArray("history");
      s.history().forEach(h::add);
    }
    return n;
  }

  private static void variants(ArrayNode arr, EndpointConfig c, EndpointState s) {
    for (EndpointVariant v : c.getVariantsList()) {
      ObjectNode o = arr.addObject().put("name", v.getName()).put("modelUri", v.getModelUri());
      if (!v.getModelGroup().isEmpty()) o.put("modelGroup", v.getModelGroup()).put("modelVersion", v.getModelVersion());
      if (v.getMultiModel()) o.put("multiModel", true);
      o.put("weight", v.getWeight()).put("instances", v.getInstances()).put("maxInstances", v.getMaxInstances());
      if (s != null) o.put("currentInstances", s.replicasOf(v.getName()));
    }
  }
}
