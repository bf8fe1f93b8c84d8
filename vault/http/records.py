"""HTTP routes: records."""

from fastapi import APIRouter

router = APIRouter()
