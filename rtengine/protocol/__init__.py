"""The sans-IO protocol core: every wire rule of the Realtime API (GA), as pure functions and values.

No trio, no sockets: payload builders, the server-event and client-event parsers, call-creation bodies and
``Location`` rules, URL rules, the join backoff schedule, header merging and redaction, and the server
error classification. The engine, the adapters and the local server all go through these.
"""

from ._backoff import DEFAULT_BACKOFF_BASE as DEFAULT_BACKOFF_BASE
from ._backoff import DEFAULT_RETRIES as DEFAULT_RETRIES
from ._backoff import backoff as backoff
from ._backoff import retry_delays as retry_delays
from ._brain import Brain as Brain
from ._brain import CancelResponse as CancelResponse
from ._brain import Command as Command
from ._brain import Reaction as Reaction
from ._brain import RequestResponse as RequestResponse
from ._brain import SendText as SendText
from ._brain import SendToolOutput as SendToolOutput
from ._brain import socket_end as socket_end
from ._calls import CALL_ID_MAX_LENGTH as CALL_ID_MAX_LENGTH
from ._calls import CallAnswer as CallAnswer
from ._calls import CallBody as CallBody
from ._calls import call_id_from_location as call_id_from_location
from ._calls import call_retry_delay as call_retry_delay
from ._calls import check_sdp as check_sdp
from ._calls import interpret_call_response as interpret_call_response
from ._calls import interpret_hangup_response as interpret_hangup_response
from ._calls import is_retryable_status as is_retryable_status
from ._calls import multipart_body as multipart_body
from ._calls import parse_retry_after as parse_retry_after
from ._calls import raw_sdp_body as raw_sdp_body
from ._calls import validate_call_id as validate_call_id
from ._classify import classify_error as classify_error
from ._headers import bearer as bearer
from ._headers import merge_request_headers as merge_request_headers
from ._headers import redact as redact
from ._lifecycle import SocketEnd as SocketEnd
from ._parse import parse_server_event as parse_server_event
from ._parse import parse_server_message as parse_server_message
from ._payloads import ClientEvent as ClientEvent
from ._payloads import encode as encode
from ._payloads import function_call_output as function_call_output
from ._payloads import input_audio_append as input_audio_append
from ._payloads import item_truncate as item_truncate
from ._payloads import output_audio_buffer_clear as output_audio_buffer_clear
from ._payloads import parse_client_event as parse_client_event
from ._payloads import response_cancel as response_cancel
from ._payloads import response_create as response_create
from ._payloads import session_update as session_update
from ._payloads import user_text as user_text
from ._secrets import Scrubber as Scrubber
from ._secrets import redact_url as redact_url
from ._urls import calls_url as calls_url
from ._urls import realtime_ws_url as realtime_ws_url
from ._urls import sideband_url as sideband_url

__all__ = [
    "Brain",
    "CancelResponse",
    "Command",
    "Reaction",
    "RequestResponse",
    "SendText",
    "Scrubber",
    "SendToolOutput",
    "SocketEnd",
    "socket_end",
    "CALL_ID_MAX_LENGTH",
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_RETRIES",
    "CallAnswer",
    "CallBody",
    "ClientEvent",
    "backoff",
    "bearer",
    "call_id_from_location",
    "call_retry_delay",
    "calls_url",
    "check_sdp",
    "classify_error",
    "encode",
    "function_call_output",
    "input_audio_append",
    "interpret_call_response",
    "interpret_hangup_response",
    "is_retryable_status",
    "item_truncate",
    "merge_request_headers",
    "multipart_body",
    "output_audio_buffer_clear",
    "parse_client_event",
    "parse_retry_after",
    "parse_server_event",
    "parse_server_message",
    "raw_sdp_body",
    "realtime_ws_url",
    "redact",
    "redact_url",
    "response_cancel",
    "response_create",
    "retry_delays",
    "session_update",
    "sideband_url",
    "user_text",
    "validate_call_id",
]
