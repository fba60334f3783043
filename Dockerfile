# The sloplane CLI and evaluator (`sloplane serve`) as a non-root image for a read-only root filesystem.
# Build: docker build -t sloplane:0.1.0 .   Run: see "Deploying the evaluator" in README.md.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/sloplane
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY sloplane ./sloplane
# Runtime dependencies only (no [dev] extra), at the versions CI tests with.
RUN /opt/sloplane/bin/pip install --constraint constraints.txt . \
 && /opt/sloplane/bin/python -m compileall -q /opt/sloplane

FROM python:3.11-slim
# Bytecode is compiled at build time: nothing is written next to the code at run time.
# HOME and the default decision log point at the only writable places (/tmp, /var/lib/sloplane).
ENV PATH=/opt/sloplane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    SLOPLANE_DB=/var/lib/sloplane/decisions.db
RUN groupadd --system --gid 10001 sloplane \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sloplane --no-create-home \
      --shell /usr/sbin/nologin sloplane \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sloplane
COPY --from=build /opt/sloplane /opt/sloplane
USER 10001:10001
WORKDIR /var/lib/sloplane
EXPOSE 8080
ENTRYPOINT ["sloplane"]
CMD ["--help"]
