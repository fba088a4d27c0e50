"""Mining supervision from the data itself: kNN graphs and reversible-NN pairs."""
