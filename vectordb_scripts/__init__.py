"""Data fetch, the ~27K-film catalogue, embeddings and the ChromaDB index (`movierec data|catalog|index`)."""
