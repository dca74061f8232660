package io.kiln.coordinator.registry;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.coordinator.api.ApiExtension;
import io.kiln.coordinator.api.ApiJson;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The registry's slice of the REST API (docs/registry.md):
 * {@code /api/v1/model-package-groups[/{group}[/versions[/{n}[/approval]|/latest-approved]]]}.
 * Refusals map to 400 / 404 / 409 with the registry's message.
 */
public final class RegistryRoutes extends AllDirectives implements ApiExtension {
  private static final Logger log = LoggerFactory.getLogger(RegistryRoutes.class);
  private final ModelRegistry registry;

  public RegistryRoutes(ModelRegistry registry) {
    this.registry = registry;
  }

  @Override
  public Route routes(String user) {
    return pathPrefix("model-package-groups", () -> concat(
        pathEndOrSingleSlash(() -> concat(
            post(() -> body(b -> createGroup(b, user))),
            get(() -> answer(registry.listGroups(), StatusCodes.OK, gs -> {
              ObjectNode n = ApiJson.obj();
              ArrayNode arr = n.putArray("groups");
              gs.forEach(g -> arr.add(RegistryViews.group(g, false)));
              return n;
            })))),
        pathPrefix(PathMatchers.segment(), group -> concat(
            pathEndOrSingleSlash(() -> get(() -> answer(registry.group(group), StatusCodes.OK,
                g -> RegistryViews.group(g, true)))),
            pathPrefix("versions", () -> concat(
                pathEndOrSingleSlash(() -> concat(
                    post(() -> body(b -> answer(register(group, b, user), StatusCodes.CREATED,
                        v -> RegistryViews.version(v, true)))),
                    get(() -> answer(registry.group(group), StatusCodes.OK, g -> {
                      ObjectNode n = ApiJson.obj();
                      ArrayNode arr = n.putArray("versions");
                      g.versions().forEach(v -> arr.add(RegistryViews.version(v, false)));
                      return n;
                    })))),
                path("latest-approved", () -> get(() -> answer(registry.latestApproved(group), StatusCodes.OK,
                    v -> RegistryViews.version(v, true)))),
                pathPrefix(PathMatchers.segment(), n -> concat(
                    pathEndOrSingleSlash(() -> get(() -> withVersion(n, v -> answer(registry.version(group, v),
                        StatusCodes.OK, mv -> RegistryViews.version(mv, true))))),
                    path("approval", () -> post(() -> withVersion(n, v -> body(b ->
                        answer(approve(group, v, b, user), StatusCodes.OK, mv -> RegistryViews.version(mv, true))))))))))))));
  }

  private Route createGroup(JsonNode b, String user) {
    CompletionStage<GroupState> created;
    try {
      only(b, Set.of("name", "description"));
      created = registry.createGroup(b.path("name").asText(""), b.path("description").asText(""), user);
    } catch (RegistryException e) {
      return failure(e);
    }
    return answer(created, StatusCodes.CREATED, g -> {
      log.info("model package group {} created by {}", g.name(), user);
      return RegistryViews.group(g, true);
    });
  }

  private CompletionStage<ModelVersion> register(String group, JsonNode b, String user) {
    try {
      return registry.register(group, RegistrationRequest.parse(b), user);
    } catch (RegistryException e) {
      return java.util.concurrent.CompletableFuture.failedFuture(e);
    }
  }

  private CompletionStage<ModelVersion> approve(String group, int version, JsonNode b, String user) {
    try {
      only(b, Set.of("status", "reason"));
      if (!b.path("status").isTextual()) {
        throw RegistryException.invalid("status is required: one of PendingManualApproval, Approved, Rejected");
      }
      ApprovalStatus status = ApprovalStatus.parse(b.path("status").asText());
      return registry.setApproval(group, version, status, b.path("reason").asText(""), user);
    } catch (RegistryException e) {
      return java.util.concurrent.CompletableFuture.failedFuture(e);
    }
  }

  private static void only(JsonNode b, Set<String> fields) {
    if (!b.isObject()) throw RegistryException.invalid("the body must be a JSON object");
    b.fieldNames().forEachRemaining(f -> {
      if (!fields.contains(f)) {
        throw RegistryException.invalid("unknown field '" + f + "' (fields: " + String.join(", ", fields.stream().sorted().toList()) + ")");
      }
    });
  }

  private Route body(Function<JsonNode, Route> inner) {
    return entity(Unmarshaller.entityToString(), s -> {
      JsonNode n;
      try {
        n = s.isBlank() ? ApiJson.obj() : ApiJson.MAPPER.readTree(s);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        return failure(RegistryException.invalid("the body is not valid JSON: " + e.getOriginalMessage()));
      }
      return inner.apply(n);
    });
  }

  private Route withVersion(String segment, Function<Integer, Route> inner) {
    int v;
    try {
      v = Integer.parseInt(segment);
    } catch (NumberFormatException e) {
      v = 0;
    }
    if (v < 1) return failure(RegistryException.invalid("version '" + segment + "' is not a number >= 1"));
    return inner.apply(v);
  }

  private <T> Route answer(CompletionStage<T> result, StatusCode ok, Function<T, ObjectNode> view) {
    return onComplete(result, t -> {
      if (t.isSuccess()) return complete(ApiJson.response(ok, view.apply(t.get())));
      Throwable e = t.failed().get();
      if (e instanceof CompletionException && e.getCause() != null) e = e.getCause();
      if (e instanceof RegistryException r) return failure(r);
      throw e instanceof RuntimeException re ? re : new CompletionException(e);
    });
  }

  private Route failure(RegistryException e) {
    StatusCode code = switch (e.kind()) {
      case INVALID -> StatusCodes.BAD_REQUEST;
      case NOT_FOUND -> StatusCodes.NOT_FOUND;
      case CONFLICT -> StatusCodes.CONFLICT;
    };
    return complete(ApiJson.response(code, ApiJson.error(e.getMessage(), List.of())));
  }
}
