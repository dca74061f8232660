package io.kiln.coordinator.api;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCode;

/** The JSON shapes every API route shares: bodies, and errors as {@code {"error", "details"?}}. */
public final class ApiJson {
  public static final ObjectMapper MAPPER = new ObjectMapper();

  private ApiJson() {}

  public static ObjectNode obj() {
    return MAPPER.createObjectNode();
  }

  public static ObjectNode error(String message, List<String> details) {
    ObjectNode n = obj().put("error", message);
    if (!details.isEmpty()) {
      ArrayNode d = n.putArray("details");
      details.forEach(d::add);
    }
    return n;
  }

  public static HttpResponse response(StatusCode status, ObjectNode body) {
    return HttpResponse.create().withStatus(status).withEntity(ContentTypes.APPLICATION_JSON, body.toString());
  }
}
