"""HTTP routes: ledger."""

from fastapi import APIRouter

router = APIRouter()
