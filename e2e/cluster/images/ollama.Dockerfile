# The in-cluster Ollama image, from the Ollama the project builds from its
# Go module (scripts/fetch-llm.sh), loaded as the operator's default Ollama
# image where no registry can be reached. Same entrypoint and port as the
# upstream image; the context holds the `ollama` binary.
ARG RUNTIME_IMAGE=debian:bookworm-slim
FROM ${RUNTIME_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY ollama /usr/bin/ollama
ENV OLLAMA_HOST=0.0.0.0:11434
EXPOSE 11434
ENTRYPOINT ["/usr/bin/ollama"]
CMD ["serve"]
