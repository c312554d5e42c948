FROM pyci-lab/base:latest
CMD ["python3", "-c", "print(1)"]
