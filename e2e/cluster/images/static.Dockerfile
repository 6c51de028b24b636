# One static binary on an empty image: the pause container and CoreDNS.
# The context holds the binary as `bin`.
FROM scratch
COPY bin /bin/entry
ENTRYPOINT ["/bin/entry"]
