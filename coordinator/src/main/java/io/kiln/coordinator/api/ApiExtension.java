package io.kiln.coordinator.api;

import org.apache.pekko.http.javadsl.server.Route;

/**
 * A capability's slice of the REST API under {@code /api/v1} (tuning jobs, models, endpoints, ...).
 * {@link ApiRoutes} authenticates first and hands over the user, so an extension never sees an
 * unauthenticated request; errors use the shared JSON shape of {@link ApiJson}.
 */
public interface ApiExtension {
  private static Route reject() {
    return org.apache.pekko.http.javadsl.server.Directives.reject();
  }

  /** Routes below {@code /api/v1}; {@code user} is the authenticated caller. */
  Route routes(String user);

  /** A path prefix outside {@code /api/v1} this extension serves (e.g. {@code endpoints}); null: none. */
  default String rootPrefix() {
    return null;
  }

  /** Routes below {@code /<rootPrefix>}, authenticated first like the rest. */
  default Route rootRoutes(String user) {
    return reject();
  }
}
