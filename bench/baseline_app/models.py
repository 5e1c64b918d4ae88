from django.db import models
from django.utils import timezone


class BaselineRow(models.Model):
    """A row about as wide as a small API object: what the minimal insert and read views touch."""

    name = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=18, decimal_places=3)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name
