# chatd in a container: `docker compose up --build` (docker-compose.yml) runs it beside
# PostgreSQL and Redis, as the original project does.
#
# Stage 1 builds on Debian 12 with the same scripts as `make`: Debian's packages
# (scripts/install-deps.sh), Swagger UI from npm (scripts/install-web.sh), then
# deploy/build.sh builds and installs into /opt/chatd. Stage 2 is Debian 12 slim with only
# the shared libraries the binary links (deploy/runtime-packages.sh), running as an
# unprivileged user.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-web.sh scripts/
RUN scripts/install-deps.sh run
COPY package.json package-lock.json ./
RUN scripts/install-web.sh run
COPY CMakeLists.txt ./
COPY cmake cmake
COPY api api
COPY web web
COPY src src
COPY deploy deploy
RUN deploy/build.sh /tmp/build /opt/chatd \
 && deploy/runtime-packages.sh /opt/chatd/bin/chatd > /opt/chatd/runtime-packages.txt

FROM debian:12-slim
COPY --from=build /opt/chatd/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --user-group --home-dir /var/lib/chatd --create-home --shell /usr/sbin/nologin chatd
COPY --from=build /opt/chatd/bin/chatd /usr/local/bin/chatd
COPY --from=build /opt/chatd/share/chatd /usr/local/share/chatd
COPY deploy/docker/entrypoint.sh /usr/local/bin/chatd-entrypoint
USER chatd
# The SQLite file (when no DB_HOST is set) and any .env live here.
WORKDIR /var/lib/chatd
VOLUME /var/lib/chatd
ENV BIND=0.0.0.0 PORT=8000
EXPOSE 8000
ENTRYPOINT ["chatd-entrypoint"]
CMD ["serve"]
