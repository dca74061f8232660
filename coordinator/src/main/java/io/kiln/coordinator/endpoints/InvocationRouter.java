package io.kiln.coordinator.endpoints;

import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * The router on the coordinator's API port: {@code /endpoints/{name}/invocations} and
 * {@code /endpoints/{name}/v2/...}, authenticated by the API routes before, handed to the same
 * {@link InvocationForwarder} as the data-plane listener ({@link DataPlane}), which is the faster
 * way in: this one adds pekko-http's own work and a hand-off to a Netty event loop and back.
 */
public final class InvocationRouter extends AllDirectives {
  private static final Duration BODY_TIMEOUT = Duration.ofSeconds(60);
  /** Headers pekko-http writes itself. */
  private static final Set<String> OWN = Set.of("date", "server");

  private final InvocationForwarder forwarder;

  public InvocationRouter(InvocationForwarder forwarder) {
    this.forwarder = forwarder;
  }

  Route route() {
    return pathPrefix(PathMatchers.segment(), name -> extractUnmatchedPath(rest -> extractRequest(req ->
        extractStrictEntity(BODY_TIMEOUT, body -> {
          String query = req.getUri().rawQueryString().map(q -> "?" + q).orElse("");
          ContentType type = body.getContentType();
          String contentType = type.equals(ContentTypes.NO_CONTENT_TYPE) ? null : type.toString();
          var call = new InvocationForwarder.Invocation(name, rest + query, req.method().value(),
              h -> h.equalsIgnoreCase("Content-Type") ? contentType : header(req, h),
              Unpooled.wrappedBuffer(body.getData().asByteBuffer()), null);
          return onSuccess(forwarder.forward(call), a -> complete(response(a)));
        }))));
  }

  private static String header(HttpRequest req, String name) {
    return req.getHeader(name).map(HttpHeader::value).orElse(null);
  }

  private static HttpResponse response(InvocationForwarder.Answer a) {
    byte[] body;
    try {
      body = ByteBufUtil.getBytes(a.body());
    } finally {
      a.body().release();
    }
    ContentType type;
    try {
      type = a.contentType() == null ? ContentTypes.APPLICATION_OCTET_STREAM : ContentTypes.parse(a.contentType());
    } catch (RuntimeException e) {
      type = ContentTypes.APPLICATION_OCTET_STREAM;
    }
    List<HttpHeader> headers = new ArrayList<>(a.headers().size());
    for (Map.Entry<String, String> h : a.headers()) {
      if (!OWN.contains(h.getKey().toLowerCase(Locale.ROOT))) headers.add(RawHeader.create(h.getKey(), h.getValue()));
    }
    return HttpResponse.create().withStatus(a.status()).withEntity(type, body).addHeaders(headers);
  }
}
