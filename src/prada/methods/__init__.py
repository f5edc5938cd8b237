"""Small parts that make the methods: the continuous prompt, the adversary, the schedules, the registry."""
