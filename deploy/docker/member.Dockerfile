# A Hazelcast member with the hz-sidecar MapStore shim. Build from the repository root:
#   docker build -f deploy/docker/member.Dockerfile -t hz-sidecar-member:5.7.0 .
# Stage 1 builds the shaded shim jar exactly as `make shim` does (the proto is compiled
# from protos/ by the Maven build).
FROM maven:3.9-eclipse-temurin-17 AS shim
WORKDIR /src
COPY protos/ protos/
COPY shim/pom.xml shim/pom.xml
RUN mvn -B -q -f shim/pom.xml dependency:go-offline || true
COPY shim/src/ shim/src/
RUN mvn -B -q -f shim/pom.xml -DskipTests package

FROM hazelcast/hazelcast:5.7.0
# The image's start script appends CLASSPATH to the member's class path.
COPY --from=shim /src/shim/target/hz-sidecar-shim.jar /opt/hazelcast/lib/ext/hz-sidecar-shim.jar
ENV CLASSPATH=/opt/hazelcast/lib/ext/hz-sidecar-shim.jar \
    JAVA_OPTS="-Dhazelcast.shutdownhook.policy=GRACEFUL -Dhazelcast.graceful.shutdown.max.wait=120"
