FROM pyci-lab/base:latest
RUN echo "compiling..." && exit 3
