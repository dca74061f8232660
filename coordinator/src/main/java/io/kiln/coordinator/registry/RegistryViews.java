package io.kiln.coordinator.registry;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.coordinator.api.ApiJson;
import io.kiln.protocol.proto.ModelLineage;
import io.kiln.protocol.proto.ModelSignature;
import io.kiln.protocol.proto.ModelTensorSpec;
import java.time.Instant;
import java.util.List;
import java.util.TreeMap;

/** Renders groups and versions as the JSON documented in docs/registry.md. */
public final class RegistryViews {
  private RegistryViews() {}

  /** A group; {@code withVersions} adds every version with its approval history. */
  public static ObjectNode group(GroupState g, boolean withVersions) {
    ObjectNode n = ApiJson.obj();
    n.put("name", g.name());
    n.put("description", g.description());
    n.put("createdBy", g.createdBy());
    n.put("createdAt", Instant.ofEpochMilli(g.createdAt()).toString());
    n.put("versionCount", g.versions().size());
    g.latestApproved().ifPresentOrElse(v -> n.put("latestApprovedVersion", v.version()),
        () -> n.putNull("latestApprovedVersion"));
    if (withVersions) {
      ArrayNode arr = n.putArray("versions");
      g.versions().forEach(v -> arr.add(version(v, true)));
    }
    return n;
  }

  /** A version; {@code withHistory} adds its approval history, oldest first. */
  public static ObjectNode version(ModelVersion v, boolean withHistory) {
    ObjectNode n = ApiJson.obj();
    n.put("group", v.group());
    n.put("version", v.version());
    n.put("status", v.status().name());
    n.put("artifactUri", v.pkg().getArtifactUri());
    n.put("framework", v.pkg().getFramework());
    n.put("description", v.pkg().getDescription());
    n.set("signature", signature(v.pkg().getSignature()));
    ObjectNode m = n.putObject("metrics");
    new TreeMap<>(v.pkg().getMetricsMap()).forEach(m::put);
    n.set("lineage", lineage(v));
    n.put("registeredBy", v.registeredBy());
    n.put("registeredAt", Instant.ofEpochMilli(v.registeredAt()).toString());
    n.put("statusChangedAt", Instant.ofEpochMilli(v.statusChangedAt()).toString());
    if (withHistory) {
      ArrayNode h = n.putArray("approvalHistory");
      for (ModelVersion.ApprovalChange c : v.history()) {
        h.addObject().put("at", Instant.ofEpochMilli(c.at()).toString()).put("status", c.status().name())
            .put("by", c.by()).put("reason", c.reason());
      }
    }
    return n;
  }

  private static ObjectNode signature(ModelSignature s) {
    ObjectNode n = ApiJson.obj();
    tensors(n.putArray("inputs"), s.getInputsList());
    tensors(n.putArray("outputs"), s.getOutputsList());
    return n;
  }

  private static void tensors(ArrayNode arr, List<ModelTensorSpec> specs) {
    for (ModelTensorSpec t : specs) {
      ObjectNode o = arr.addObject().put("name", t.getName()).put("datatype", t.getDatatype());
      ArrayNode shape = o.putArray("shape");
      t.getShapeList().forEach(shape::add);
    }
  }

  private static ObjectNode lineage(ModelVersion v) {
    ModelLineage l = v.pkg().getLineage();
    ObjectNode n = ApiJson.obj();
    n.put("trainingJobId", l.getTrainingJobId());
    n.put("trainingJobName", l.getTrainingJobName());
    ObjectNode c = n.putObject("channels");
    new TreeMap<>(l.getChannelsMap()).forEach(c::put);
    ObjectNode h = n.putObject("hyperparameters");
    new TreeMap<>(l.getHyperparametersMap()).forEach(h::put);
    n.put("sourceUri", l.getSourceUri());
    n.put("trainedBy", l.getTrainedBy());
    if (l.getTrainedAtMs() > 0) n.put("trainedAt", Instant.ofEpochMilli(l.getTrainedAtMs()).toString());
    else n.putNull("trainedAt");
    // Who registered it and when: the lineage's last step, where the registry took over.
    n.put("registeredBy", v.registeredBy());
    n.put("registeredAt", Instant.ofEpochMilli(v.registeredAt()).toString());
    return n;
  }
}
